//! [`EntityStore`] on SQLite.

use std::path::Path;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use whisk_model::EntityType;

use super::{
    Database, clamp_to_sql_integer, from_sql_integer, parse_document, sql_limit, to_sql_integer,
};
use crate::entity::{
    EntityDocument, EntityQuery, EntityScope, EntityStore, Revision, StoredEntity,
};
use crate::error::{StoreError, StoreResult};

const ENTITY_COLUMNS: &str =
    "doc_id, entity_type, namespace, name, updated, publish, binding, revision, document";

/// Entities in the `entities` table; see the migration for the indexes.
#[derive(Debug, Clone)]
pub struct SqliteEntityStore {
    database: Database,
}

impl SqliteEntityStore {
    pub(crate) fn new(database: Database) -> SqliteEntityStore {
        SqliteEntityStore { database }
    }

    /// The database file this store writes to.
    pub fn database_path(&self) -> &Path {
        self.database.path()
    }
}

/// A row as SQLite returns it, before the checks that can find it corrupt.
struct EntityRow {
    doc_id: String,
    entity_type: String,
    namespace: String,
    name: String,
    updated: i64,
    publish: bool,
    binding: bool,
    revision: i64,
    document: String,
}

impl EntityRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<EntityRow> {
        Ok(EntityRow {
            doc_id: row.get(0)?,
            entity_type: row.get(1)?,
            namespace: row.get(2)?,
            name: row.get(3)?,
            updated: row.get(4)?,
            publish: row.get(5)?,
            binding: row.get(6)?,
            revision: row.get(7)?,
            document: row.get(8)?,
        })
    }

    fn decode(self) -> StoreResult<StoredEntity> {
        let entity_type = EntityType::from_name(&self.entity_type).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "entity '{}' has unknown type '{}'",
                self.doc_id, self.entity_type
            ))
        })?;
        let what = format!("entity '{}'", self.doc_id);
        Ok(StoredEntity {
            entity_type,
            updated: from_sql_integer(self.updated, &format!("{what} updated"))?,
            revision: stored_revision_of(&self.doc_id, self.revision)?,
            document: parse_document(&self.document, &what)?,
            doc_id: self.doc_id,
            namespace: self.namespace,
            name: self.name,
            publish: self.publish,
            binding: self.binding,
        })
    }
}

fn stored_revision_of(doc_id: &str, stored: i64) -> StoreResult<Revision> {
    from_sql_integer(stored, &format!("entity '{doc_id}' revision")).map(Revision::from_sequence)
}

/// Draws the next value of the revision sequence shared by all entities.
fn next_revision(transaction: &rusqlite::Transaction<'_>) -> StoreResult<Revision> {
    let sequence: i64 = transaction.query_row(
        "UPDATE sequences SET value = value + 1 WHERE name = 'entity_revision' RETURNING value",
        [],
        |row| row.get(0),
    )?;
    Ok(Revision::from_sequence(from_sql_integer(
        sequence,
        "entity revision sequence",
    )?))
}

/// The WHERE clause and its two parameters for a query; the public filter is
/// spelled exactly as in the partial indexes so SQLite can use them.
fn where_clause(query: &EntityQuery) -> (String, &'static str, &str) {
    let (column, value) = match &query.scope {
        EntityScope::Namespace(root) => ("root_namespace", root.as_str()),
        EntityScope::Exact(path) => ("namespace", path.as_str()),
    };
    let public_filter = if query.public_only {
        " AND publish = 1 AND binding = 0"
    } else {
        ""
    };
    (
        format!("entity_type = ?1 AND {column} = ?2{public_filter}"),
        query.entity_type.as_str(),
        value,
    )
}

/// The list statement for a query, exposed so tests can check its query plan.
pub(crate) fn list_sql(query: &EntityQuery) -> String {
    let (condition, _, _) = where_clause(query);
    format!(
        "SELECT {ENTITY_COLUMNS} FROM entities WHERE {condition} \
         ORDER BY updated DESC, doc_id LIMIT ?3 OFFSET ?4"
    )
}

/// The count statement for a query, exposed so tests can check its query plan.
pub(crate) fn count_sql(query: &EntityQuery) -> String {
    let (condition, _, _) = where_clause(query);
    format!("SELECT count(*) FROM entities WHERE {condition}")
}

#[async_trait]
impl EntityStore for SqliteEntityStore {
    async fn get(&self, doc_id: &str) -> StoreResult<Option<StoredEntity>> {
        let doc_id = doc_id.to_string();
        self.database
            .run(move |connection| {
                let row = connection
                    .query_row(
                        &format!("SELECT {ENTITY_COLUMNS} FROM entities WHERE doc_id = ?1"),
                        params![doc_id],
                        EntityRow::read,
                    )
                    .optional()?;
                row.map(EntityRow::decode).transpose()
            })
            .await
    }

    async fn put(
        &self,
        entity: EntityDocument,
        expected: Option<Revision>,
    ) -> StoreResult<Revision> {
        entity.validate().map_err(StoreError::InvalidInput)?;
        let updated = to_sql_integer(entity.updated, "updated time")?;
        let document = serde_json::to_string(&entity.document).map_err(|error| {
            StoreError::InvalidInput(format!("document cannot be serialized: {error}"))
        })?;
        let revision = self
            .database
            .write(move |transaction| {
                let current: Option<(String, i64)> = transaction
                    .query_row(
                        "SELECT entity_type, revision FROM entities WHERE doc_id = ?1",
                        params![entity.doc_id],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()?;
                match (current, expected) {
                    (None, None) => {}
                    (None, Some(_)) => {
                        return Err(StoreError::NotFound(format!("entity '{}'", entity.doc_id)));
                    }
                    (Some((existing_type, _)), None) => {
                        return Err(StoreError::AlreadyExists(format!(
                            "'{}' is already a {existing_type}",
                            entity.doc_id
                        )));
                    }
                    (Some((existing_type, stored_revision)), Some(expected_revision)) => {
                        if existing_type != entity.entity_type.as_str() {
                            return Err(StoreError::AlreadyExists(format!(
                                "'{}' is a {existing_type}, not a {}",
                                entity.doc_id, entity.entity_type
                            )));
                        }
                        let current_revision =
                            stored_revision_of(&entity.doc_id, stored_revision)?;
                        if current_revision != expected_revision {
                            return Err(StoreError::Conflict(format!(
                                "entity '{}' is at revision {current_revision}, not {expected_revision}",
                                entity.doc_id
                            )));
                        }
                    }
                }
                let revision = next_revision(transaction)?;
                let revision_value = to_sql_integer(revision.sequence(), "revision")?;
                transaction.execute(
                    "INSERT INTO entities (doc_id, entity_type, namespace, root_namespace, name, \
                         updated, publish, binding, revision, document) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                     ON CONFLICT (doc_id) DO UPDATE SET \
                         namespace = excluded.namespace, root_namespace = excluded.root_namespace, \
                         name = excluded.name, updated = excluded.updated, \
                         publish = excluded.publish, binding = excluded.binding, \
                         revision = excluded.revision, document = excluded.document",
                    params![
                        entity.doc_id,
                        entity.entity_type.as_str(),
                        entity.namespace,
                        entity.root_namespace(),
                        entity.name,
                        updated,
                        entity.publish,
                        entity.binding,
                        revision_value,
                        document,
                    ],
                )?;
                tracing::debug!(
                    doc_id = %entity.doc_id,
                    entity_type = %entity.entity_type,
                    %revision,
                    created = expected.is_none(),
                    "stored entity"
                );
                Ok(revision)
            })
            .await?;
        Ok(revision)
    }

    async fn delete(&self, doc_id: &str, expected: Revision) -> StoreResult<()> {
        let doc_id = doc_id.to_string();
        self.database
            .write(move |transaction| {
                let current: Option<i64> = transaction
                    .query_row(
                        "SELECT revision FROM entities WHERE doc_id = ?1",
                        params![doc_id],
                        |row| row.get(0),
                    )
                    .optional()?;
                let Some(current) = current else {
                    return Err(StoreError::NotFound(format!("entity '{doc_id}'")));
                };
                let current = stored_revision_of(&doc_id, current)?;
                if current != expected {
                    return Err(StoreError::Conflict(format!(
                        "entity '{doc_id}' is at revision {current}, not {expected}"
                    )));
                }
                transaction.execute("DELETE FROM entities WHERE doc_id = ?1", params![doc_id])?;
                tracing::debug!(%doc_id, revision = %expected, "deleted entity");
                Ok(())
            })
            .await
    }

    async fn list(&self, query: &EntityQuery) -> StoreResult<Vec<StoredEntity>> {
        let sql = list_sql(query);
        let (_, entity_type, scope_value) = where_clause(query);
        let scope_value = scope_value.to_string();
        let limit = sql_limit(query.limit);
        let skip = clamp_to_sql_integer(query.skip);
        self.database
            .run(move |connection| {
                let mut statement = connection.prepare_cached(&sql)?;
                let rows = statement
                    .query_map(
                        params![entity_type, scope_value, limit, skip],
                        EntityRow::read,
                    )?
                    .collect::<rusqlite::Result<Vec<EntityRow>>>()?;
                rows.into_iter().map(EntityRow::decode).collect()
            })
            .await
    }

    async fn count(&self, query: &EntityQuery) -> StoreResult<u64> {
        let sql = count_sql(query);
        let (_, entity_type, scope_value) = where_clause(query);
        let scope_value = scope_value.to_string();
        let skip = query.skip;
        self.database
            .run(move |connection| {
                let total: i64 = connection
                    .prepare_cached(&sql)?
                    .query_row(params![entity_type, scope_value], |row| row.get(0))?;
                Ok(from_sql_integer(total, "entity count")?.saturating_sub(skip))
            })
            .await
    }
}
