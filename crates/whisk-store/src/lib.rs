//! Stores for entities, subjects and activations, with their SQLite (embedded)
//! and PostgreSQL (cluster) adapters.
//!
//! The store is a document store in the manner of OpenWhisk's CouchDB: each
//! entity or activation is kept as the JSON the API serves, next to the few
//! columns lists filter and sort on. Converting between typed model values and
//! documents is the caller's job; nothing here knows about HTTP.

mod activation;
mod entity;
mod error;
mod postgres;
mod retention;
mod sqlite;
mod subject;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

use std::path::Path;
use std::sync::Arc;

pub use activation::{ActivationEntry, ActivationQuery, ActivationStore};
pub use entity::{
    EntityDocument, EntityQuery, EntityScope, EntityStore, InvalidRevision, Revision, StoredEntity,
};
pub use error::{StoreError, StoreResult};
pub use postgres::{
    PostgresActivationStore, PostgresDatabase, PostgresEntityStore, PostgresOptions,
    PostgresSubjectStore, PostgresTls,
};
pub use retention::{RetentionTask, spawn_retention};
pub use sqlite::{
    DATABASE_FILE_NAME, SqliteActivationStore, SqliteEntityStore, SqliteSubjectStore,
};
pub use subject::{KeyHash, SubjectStore};

/// The three stores a component needs, behind trait objects so the binary
/// can pick the backend at start-up.
#[derive(Debug, Clone)]
pub struct Store {
    pub entities: Arc<dyn EntityStore>,
    pub subjects: Arc<dyn SubjectStore>,
    pub activations: Arc<dyn ActivationStore>,
}

/// Opens the embedded store: `whisk.db` in `data_dir`, created with its
/// directory if missing, schema migrated to this build's version.
///
/// Blocking (it opens and migrates the file); call it at start-up. Fails with
/// [`StoreError::SchemaTooNew`] on a database written by a newer whisk-rs.
pub fn open_sqlite(data_dir: &Path) -> StoreResult<Store> {
    let database = sqlite::Database::open(data_dir)?;
    Ok(Store {
        entities: Arc::new(SqliteEntityStore::new(database.clone())),
        subjects: Arc::new(SqliteSubjectStore::new(database.clone())),
        activations: Arc::new(SqliteActivationStore::new(database)),
    })
}

/// Opens the cluster store on a PostgreSQL server: connects a pool, creates the
/// schema named in `options` if asked to, and migrates it to this build's version.
///
/// `url` is a libpq-style URL (`postgres://user:password@host:port/dbname`).
/// Fails with [`StoreError::Unavailable`] when the server cannot be reached
/// within `options.connect_timeout`, [`StoreError::InvalidInput`] for a bad URL,
/// schema name or CA file, and [`StoreError::SchemaTooNew`] on a database
/// written by a newer whisk-rs.
pub async fn open_postgres(url: &str, options: &PostgresOptions) -> StoreResult<Store> {
    postgres::open(url, options).await
}
