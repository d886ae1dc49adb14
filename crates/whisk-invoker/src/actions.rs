//! Loading the action an activation message names, cached per revision.
//!
//! Messages carry only the action's name and the revision the controller resolved, so large code
//! never crosses the bus. Revisions are never reused (see `whisk_store::Revision`), so a cached
//! revision is valid forever; the cache only has to stay small.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use whisk_model::{EntityType, WhiskAction};
use whisk_store::{EntityStore, StoreError};

/// How many actions the cache holds before it starts over.
pub const DEFAULT_ACTION_CACHE_ENTRIES: usize = 1024;

/// Why an action could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Deleted, replaced by another revision, or never an action.
    #[error("action {doc_id} revision {revision} is gone")]
    Gone { doc_id: String, revision: String },
    /// The stored document does not decode as an action.
    #[error("action {doc_id} does not decode: {detail}")]
    Corrupt { doc_id: String, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A per-revision cache in front of the entity store.
#[derive(Debug)]
pub struct ActionCache {
    entities: Arc<dyn EntityStore>,
    capacity: usize,
    cached: Mutex<HashMap<String, (String, Arc<WhiskAction>)>>,
}

impl ActionCache {
    pub fn new(entities: Arc<dyn EntityStore>, capacity: usize) -> ActionCache {
        ActionCache {
            entities,
            capacity: capacity.max(1),
            cached: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Arc<WhiskAction>)>> {
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The action stored under `doc_id` at exactly `revision`.
    pub async fn get(&self, doc_id: &str, revision: &str) -> Result<Arc<WhiskAction>, LoadError> {
        if let Some((cached_revision, action)) = self.cached().get(doc_id)
            && cached_revision == revision
        {
            return Ok(action.clone());
        }
        let gone = || LoadError::Gone {
            doc_id: doc_id.to_string(),
            revision: revision.to_string(),
        };
        let stored = self.entities.get(doc_id).await?.ok_or_else(gone)?;
        if stored.entity_type != EntityType::Action || stored.revision.to_string() != revision {
            return Err(gone());
        }
        let action: WhiskAction =
            serde_json::from_value(stored.document).map_err(|error| LoadError::Corrupt {
                doc_id: doc_id.to_string(),
                detail: error.to_string(),
            })?;
        let action = Arc::new(action);
        let mut cached = self.cached();
        if cached.len() >= self.capacity && !cached.contains_key(doc_id) {
            cached.clear();
        }
        cached.insert(doc_id.to_string(), (revision.to_string(), action.clone()));
        Ok(action)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use serde_json::json;
    use whisk_model::{ActionLimits, EntityName, EntityPath, Exec, SemVer};
    use whisk_store::EntityDocument;

    use super::*;

    fn hello() -> WhiskAction {
        WhiskAction {
            namespace: EntityPath::parse("guest").unwrap(),
            name: EntityName::new("hello").unwrap(),
            exec: Exec::Code {
                kind: "nodejs:20".into(),
                code: "x".into(),
                main: None,
                binary: false,
            },
            parameters: Default::default(),
            limits: ActionLimits::default(),
            version: SemVer::default(),
            publish: false,
            annotations: Default::default(),
            updated: 1,
        }
    }

    fn document(entity_type: EntityType, document: serde_json::Value) -> EntityDocument {
        EntityDocument {
            doc_id: "guest/hello".into(),
            entity_type,
            namespace: "guest".into(),
            name: "hello".into(),
            updated: 1,
            publish: false,
            binding: false,
            document,
        }
    }

    fn store() -> (tempfile::TempDir, Arc<dyn EntityStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = whisk_store::open_sqlite(dir.path()).unwrap();
        (dir, store.entities)
    }

    #[tokio::test]
    async fn a_revision_is_loaded_once_and_then_served_from_the_cache() {
        let (_dir, entities) = store();
        let doc = document(EntityType::Action, serde_json::to_value(hello()).unwrap());
        let revision = entities.put(doc, None).await.unwrap();
        let cache = ActionCache::new(entities.clone(), 8);
        let action = cache
            .get("guest/hello", &revision.to_string())
            .await
            .unwrap();
        assert_eq!(*action, hello());
        entities.delete("guest/hello", revision).await.unwrap();
        assert!(
            cache
                .get("guest/hello", &revision.to_string())
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_missing_action_or_another_revision_is_gone() {
        let (_dir, entities) = store();
        let cache = ActionCache::new(entities.clone(), 8);
        assert!(matches!(
            cache.get("guest/hello", "1").await,
            Err(LoadError::Gone { .. })
        ));
        let doc = document(EntityType::Action, serde_json::to_value(hello()).unwrap());
        let revision = entities.put(doc, None).await.unwrap();
        let other = format!("{}0", revision);
        assert!(matches!(
            cache.get("guest/hello", &other).await,
            Err(LoadError::Gone { .. })
        ));
    }

    #[tokio::test]
    async fn another_entity_type_is_gone_and_a_bad_document_is_corrupt() {
        let (_dir, entities) = store();
        let cache = ActionCache::new(entities.clone(), 8);
        let trigger = entities
            .put(document(EntityType::Trigger, json!({})), None)
            .await
            .unwrap();
        assert!(matches!(
            cache.get("guest/hello", &trigger.to_string()).await,
            Err(LoadError::Gone { .. })
        ));
        entities.delete("guest/hello", trigger).await.unwrap();
        let bad = entities
            .put(document(EntityType::Action, json!({"exec": 5})), None)
            .await
            .unwrap();
        assert!(matches!(
            cache.get("guest/hello", &bad.to_string()).await,
            Err(LoadError::Corrupt { .. })
        ));
    }

    #[tokio::test]
    async fn a_full_cache_starts_over() {
        let (_dir, entities) = store();
        let cache = ActionCache::new(entities.clone(), 1);
        let doc = document(EntityType::Action, serde_json::to_value(hello()).unwrap());
        let first = entities.put(doc.clone(), None).await.unwrap();
        cache.get("guest/hello", &first.to_string()).await.unwrap();
        let mut other = hello();
        other.name = EntityName::new("other").unwrap();
        let other_doc = EntityDocument {
            doc_id: "guest/other".into(),
            name: "other".into(),
            document: serde_json::to_value(&other).unwrap(),
            ..doc
        };
        let second = entities.put(other_doc, None).await.unwrap();
        cache.get("guest/other", &second.to_string()).await.unwrap();
        assert_eq!(cache.cached().len(), 1);
        assert!(cache.cached().contains_key("guest/other"));
    }
}
