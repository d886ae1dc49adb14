//! Storage of actions, packages, triggers and rules as JSON documents.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use whisk_model::EntityType;

use crate::error::StoreResult;

/// The version stamp of a stored entity, used for optimistic concurrency.
///
/// Callers treat it as opaque: they only hand back what they read. Backends
/// draw it from one sequence shared by every entity and never reuse a value,
/// even after a delete and re-create, so anything cached by revision (action
/// metadata, warm containers) can never mistake a new incarnation for an old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Revision(u64);

impl Revision {
    /// Wraps a backend-assigned sequence number; only adapters mint revisions.
    pub(crate) fn from_sequence(sequence: u64) -> Revision {
        Revision(sequence)
    }

    /// The backend sequence number, for adapters writing it to their storage.
    pub(crate) fn sequence(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a string is not a revision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a revision")]
pub struct InvalidRevision(String);

impl FromStr for Revision {
    type Err = InvalidRevision;

    fn from_str(text: &str) -> Result<Revision, InvalidRevision> {
        text.parse::<u64>()
            .map(Revision)
            .map_err(|_| InvalidRevision(text.to_string()))
    }
}

/// Serialized as a string so it stays opaque to JSON consumers and survives
/// JavaScript clients that cannot hold 64-bit integers.
impl Serialize for Revision {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Revision {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Revision, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An entity as the controller hands it to the store: the API JSON plus the
/// columns the store indexes (which must agree with the JSON; the store does
/// not look inside `document`).
#[derive(Debug, Clone, PartialEq)]
pub struct EntityDocument {
    /// `namespace/name`, i.e. `ns/name` or `ns/pkg/name`; unique across all entity types.
    pub doc_id: String,
    pub entity_type: EntityType,
    /// The namespace path: `ns` or `ns/pkg`.
    pub namespace: String,
    pub name: String,
    /// Epoch milliseconds of the last write; lists are ordered by it.
    pub updated: u64,
    /// Whether a package is shared with other namespaces.
    pub publish: bool,
    /// Whether a package is a binding (bindings are never listed to other namespaces).
    pub binding: bool,
    pub document: serde_json::Value,
}

impl EntityDocument {
    /// The first segment of the namespace path, which owns the entity.
    pub fn root_namespace(&self) -> &str {
        root_of(&self.namespace)
    }

    /// Checks that the indexed columns describe the id they are stored under,
    /// so a caller bug cannot file an entity where lists will not find it.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.contains('/') {
            return Err(format!("entity name '{}' is not a simple name", self.name));
        }
        let segments = self.namespace.split('/').count();
        if self.namespace.split('/').any(str::is_empty) || segments > 2 {
            return Err(format!(
                "namespace path '{}' must be 'ns' or 'ns/pkg'",
                self.namespace
            ));
        }
        let expected_id = format!("{}/{}", self.namespace, self.name);
        if self.doc_id != expected_id {
            return Err(format!(
                "document id '{}' does not match namespace and name ('{expected_id}')",
                self.doc_id
            ));
        }
        Ok(())
    }
}

/// An entity as read back from the store, with its current revision.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntity {
    pub doc_id: String,
    pub entity_type: EntityType,
    pub namespace: String,
    pub name: String,
    pub updated: u64,
    pub publish: bool,
    pub binding: bool,
    pub revision: Revision,
    pub document: serde_json::Value,
}

impl StoredEntity {
    /// The first segment of the namespace path, which owns the entity.
    pub fn root_namespace(&self) -> &str {
        root_of(&self.namespace)
    }

    /// The writable form, e.g. to modify and `put` back with `self.revision`.
    pub fn into_document(self) -> (EntityDocument, Revision) {
        let revision = self.revision;
        let document = EntityDocument {
            doc_id: self.doc_id,
            entity_type: self.entity_type,
            namespace: self.namespace,
            name: self.name,
            updated: self.updated,
            publish: self.publish,
            binding: self.binding,
            document: self.document,
        };
        (document, revision)
    }
}

fn root_of(namespace_path: &str) -> &str {
    namespace_path
        .split_once('/')
        .map_or(namespace_path, |(root, _)| root)
}

/// Which namespace paths a list or count covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityScope {
    /// Every entity whose root namespace is this one, including those inside its
    /// packages (what `GET /namespaces/ns/actions` lists).
    Namespace(String),
    /// Only entities whose namespace path is exactly this (`ns/pkg`, or `ns` for
    /// the default package).
    Exact(String),
}

/// A list or count request over one entity type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityQuery {
    pub entity_type: EntityType,
    pub scope: EntityScope,
    /// Keep only published, non-binding entities: what another namespace may see.
    pub public_only: bool,
    pub skip: u64,
    /// `None` lists everything after `skip`; the API's defaults and caps are the caller's business.
    pub limit: Option<u64>,
}

impl EntityQuery {
    /// All entities of a type in a scope, no paging, private ones included.
    pub fn new(entity_type: EntityType, scope: EntityScope) -> EntityQuery {
        EntityQuery {
            entity_type,
            scope,
            public_only: false,
            skip: 0,
            limit: None,
        }
    }
}

/// Actions, packages, triggers and rules of every namespace.
///
/// All entity types of a namespace share one id space: an id is either free
/// or held by exactly one entity of one type.
#[async_trait]
pub trait EntityStore: Send + Sync + fmt::Debug {
    /// Reads one entity by document id, whatever its type.
    async fn get(&self, doc_id: &str) -> StoreResult<Option<StoredEntity>>;

    /// Creates (`expected == None`) or updates (`Some(revision)`) an entity and
    /// returns its new revision.
    ///
    /// Create fails with `AlreadyExists` if any entity holds the id. Update
    /// fails with `NotFound` if the id is free, `AlreadyExists` if it is held
    /// by another entity type, and `Conflict` unless `expected` is current.
    async fn put(
        &self,
        entity: EntityDocument,
        expected: Option<Revision>,
    ) -> StoreResult<Revision>;

    /// Deletes an entity if `expected` is its current revision
    /// (`NotFound` if absent, `Conflict` if stale).
    async fn delete(&self, doc_id: &str, expected: Revision) -> StoreResult<()>;

    /// Newest first by `updated`, ties by ascending doc id, after `skip`, at most `limit`.
    async fn list(&self, query: &EntityQuery) -> StoreResult<Vec<StoredEntity>>;

    /// How many entities `list` would return without a limit (skip is honoured).
    async fn count(&self, query: &EntityQuery) -> StoreResult<u64>;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use super::*;

    fn document(doc_id: &str, namespace: &str, name: &str) -> EntityDocument {
        EntityDocument {
            doc_id: doc_id.to_string(),
            entity_type: EntityType::Action,
            namespace: namespace.to_string(),
            name: name.to_string(),
            updated: 1,
            publish: false,
            binding: false,
            document: serde_json::json!({}),
        }
    }

    #[test]
    fn revision_round_trips_as_string() {
        let revision = Revision::from_sequence(42);
        assert_eq!(serde_json::to_string(&revision).unwrap(), "\"42\"");
        let parsed: Revision = serde_json::from_str("\"42\"").unwrap();
        assert_eq!(parsed, revision);
        assert!(Revision::from_sequence(41) < revision);
        assert!("x1".parse::<Revision>().is_err());
    }

    #[test]
    fn root_namespace_is_first_segment() {
        assert_eq!(document("a/p/x", "a/p", "x").root_namespace(), "a");
        assert_eq!(document("a/x", "a", "x").root_namespace(), "a");
    }

    #[test]
    fn validate_requires_consistent_id() {
        assert!(document("a/x", "a", "x").validate().is_ok());
        assert!(document("a/p/x", "a/p", "x").validate().is_ok());
        assert!(document("a/y", "a", "x").validate().is_err());
        assert!(document("a/p/q/x", "a/p/q", "x").validate().is_err());
        assert!(document("a//x", "a/", "x").validate().is_err());
        assert!(document("a/x/y", "a", "x/y").validate().is_err());
    }
}
