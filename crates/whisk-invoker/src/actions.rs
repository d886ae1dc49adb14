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
