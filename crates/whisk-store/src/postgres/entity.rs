//! [`EntityStore`] on PostgreSQL.

use async_trait::async_trait;
use tokio_postgres::Row;
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
pub struct PostgresEntityStore {
    database: Database,
}

impl PostgresEntityStore {
    pub(crate) fn new(database: Database) -> PostgresEntityStore {
        PostgresEntityStore { database }
    }
}

/// Decodes a row selected with [`ENTITY_COLUMNS`].
fn decode(row: &Row) -> StoreResult<StoredEntity> {
    let doc_id: String = row.try_get(0)?;
    let type_name: String = row.try_get(1)?;
    let entity_type = EntityType::from_name(&type_name).ok_or_else(|| {
        StoreError::Corrupt(format!("entity '{doc_id}' has unknown type '{type_name}'"))
    })?;
    let what = format!("entity '{doc_id}'");
    let document: String = row.try_get(8)?;
    Ok(StoredEntity {
        entity_type,
        namespace: row.try_get(2)?,
        name: row.try_get(3)?,
        updated: from_sql_integer(row.try_get(4)?, &format!("{what} updated"))?,
        publish: row.try_get(5)?,
        binding: row.try_get(6)?,
        revision: stored_revision_of(&doc_id, row.try_get(7)?)?,
        document: parse_document(&document, &what)?,
        doc_id,
    })
}

fn stored_revision_of(doc_id: &str, stored: i64) -> StoreResult<Revision> {
    from_sql_integer(stored, &format!("entity '{doc_id}' revision")).map(Revision::from_sequence)
}

/// The WHERE clause and its two parameters for a query; the public filter is
/// spelled exactly as in the partial indexes so the planner can use them.
fn where_clause(query: &EntityQuery) -> (String, &'static str, &str) {
    let (column, value) = match &query.scope {
        EntityScope::Namespace(root) => ("root_namespace", root.as_str()),
        EntityScope::Exact(path) => ("namespace", path.as_str()),
    };
    let public_filter = if query.public_only {
        " AND publish AND NOT binding"
    } else {
        ""
    };
    (
        format!("entity_type = $1 AND {column} = $2{public_filter}"),
        query.entity_type.as_str(),
        value,
    )
}

/// The list statement for a query, exposed so tests can check its query plan.
pub(crate) fn list_sql(query: &EntityQuery) -> String {
    let (condition, _, _) = where_clause(query);
    format!(
        "SELECT {ENTITY_COLUMNS} FROM entities WHERE {condition} \
         ORDER BY updated DESC, doc_id LIMIT $3 OFFSET $4"
    )
}

/// The count statement for a query, exposed so tests can check its query plan.
pub(crate) fn count_sql(query: &EntityQuery) -> String {
    let (condition, _, _) = where_clause(query);
    format!("SELECT count(*) FROM entities WHERE {condition}")
}

/// Explains why a conditional write matched no row, from the row as it is now.
async fn classify_miss(
    client: &deadpool_postgres::Object,
    entity: &EntityDocument,
    expected: Revision,
) -> StoreResult<StoreError> {
    let current = client
        .query_opt(
            "SELECT entity_type, revision FROM entities WHERE doc_id = $1",
            &[&entity.doc_id],
        )
        .await?;
    let Some(row) = current else {
        return Ok(StoreError::NotFound(format!("entity '{}'", entity.doc_id)));
    };
    let existing_type: String = row.try_get(0)?;
    if existing_type != entity.entity_type.as_str() {
        return Ok(StoreError::AlreadyExists(format!(
            "'{}' is a {existing_type}, not a {}",
            entity.doc_id, entity.entity_type
        )));
    }
    let current_revision = stored_revision_of(&entity.doc_id, row.try_get(1)?)?;
    Ok(StoreError::Conflict(format!(
        "entity '{}' is at revision {current_revision}, not {expected}",
        entity.doc_id
    )))
}

#[async_trait]
impl EntityStore for PostgresEntityStore {
    async fn get(&self, doc_id: &str) -> StoreResult<Option<StoredEntity>> {
        let client = self.database.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {ENTITY_COLUMNS} FROM entities WHERE doc_id = $1"
            ))
            .await?;
        let row = client.query_opt(&statement, &[&doc_id]).await?;
        row.as_ref().map(decode).transpose()
    }

    /// One conditional statement per case: an insert that yields nothing if the
    /// id is taken, or an update that matches only the expected revision. Two
    /// writers of the same revision serialise on the row lock and the second
    /// re-checks the condition against the first's result, so exactly one wins.
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
        let client = self.database.client().await?;
        let entity_type = entity.entity_type.as_str();
        let root_namespace = entity.root_namespace();
        let written = match expected {
            None => {
                let statement = client
                    .prepare_cached(
                        "INSERT INTO entities (doc_id, entity_type, namespace, root_namespace, name, \
                             updated, publish, binding, revision, document) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, nextval('entity_revision'), $9) \
                         ON CONFLICT (doc_id) DO NOTHING RETURNING revision",
                    )
                    .await?;
                client
                    .query_opt(
                        &statement,
                        &[
                            &entity.doc_id,
                            &entity_type,
                            &entity.namespace,
                            &root_namespace,
                            &entity.name,
                            &updated,
                            &entity.publish,
                            &entity.binding,
                            &document,
                        ],
                    )
                    .await?
            }
            Some(expected_revision) => {
                let expected_value = to_sql_integer(expected_revision.sequence(), "revision")?;
                let statement = client
                    .prepare_cached(
                        "UPDATE entities SET namespace = $3, root_namespace = $4, name = $5, \
                             updated = $6, publish = $7, binding = $8, document = $9, \
                             revision = nextval('entity_revision') \
                         WHERE doc_id = $1 AND entity_type = $2 AND revision = $10 \
                         RETURNING revision",
                    )
                    .await?;
                client
                    .query_opt(
                        &statement,
                        &[
                            &entity.doc_id,
                            &entity_type,
                            &entity.namespace,
                            &root_namespace,
                            &entity.name,
                            &updated,
                            &entity.publish,
                            &entity.binding,
                            &document,
                            &expected_value,
                        ],
                    )
                    .await?
            }
        };
        let Some(row) = written else {
            return Err(match expected {
                None => {
                    let holder = client
                        .query_opt(
                            "SELECT entity_type FROM entities WHERE doc_id = $1",
                            &[&entity.doc_id],
                        )
                        .await?;
                    let holder: Option<String> = holder.map(|row| row.try_get(0)).transpose()?;
                    StoreError::AlreadyExists(match holder {
                        Some(existing_type) => {
                            format!("'{}' is already a {existing_type}", entity.doc_id)
                        }
                        None => format!("'{}' was taken concurrently", entity.doc_id),
                    })
                }
                Some(expected_revision) => {
                    classify_miss(&client, &entity, expected_revision).await?
                }
            });
        };
        let revision = stored_revision_of(&entity.doc_id, row.try_get(0)?)?;
        tracing::debug!(
            doc_id = %entity.doc_id,
            entity_type = %entity.entity_type,
            %revision,
            created = expected.is_none(),
            "stored entity"
        );
        Ok(revision)
    }

    async fn delete(&self, doc_id: &str, expected: Revision) -> StoreResult<()> {
        let expected_value = to_sql_integer(expected.sequence(), "revision")?;
        let client = self.database.client().await?;
        let statement = client
            .prepare_cached("DELETE FROM entities WHERE doc_id = $1 AND revision = $2")
            .await?;
        let deleted = client
            .execute(&statement, &[&doc_id, &expected_value])
            .await?;
        if deleted == 0 {
            let current = client
                .query_opt(
                    "SELECT revision FROM entities WHERE doc_id = $1",
                    &[&doc_id],
                )
                .await?;
            return Err(match current {
                None => StoreError::NotFound(format!("entity '{doc_id}'")),
                Some(row) => {
                    let current = stored_revision_of(doc_id, row.try_get(0)?)?;
                    StoreError::Conflict(format!(
                        "entity '{doc_id}' is at revision {current}, not {expected}"
                    ))
                }
            });
        }
        tracing::debug!(%doc_id, revision = %expected, "deleted entity");
        Ok(())
    }

    async fn list(&self, query: &EntityQuery) -> StoreResult<Vec<StoredEntity>> {
        let sql = list_sql(query);
        let (_, entity_type, scope_value) = where_clause(query);
        let limit = sql_limit(query.limit);
        let skip = clamp_to_sql_integer(query.skip);
        let client = self.database.client().await?;
        let statement = client.prepare_cached(&sql).await?;
        let rows = client
            .query(&statement, &[&entity_type, &scope_value, &limit, &skip])
            .await?;
        rows.iter().map(decode).collect()
    }

    async fn count(&self, query: &EntityQuery) -> StoreResult<u64> {
        let sql = count_sql(query);
        let (_, entity_type, scope_value) = where_clause(query);
        let client = self.database.client().await?;
        let statement = client.prepare_cached(&sql).await?;
        let total: i64 = client
            .query_one(&statement, &[&entity_type, &scope_value])
            .await?
            .try_get(0)?;
        Ok(from_sql_integer(total, "entity count")?.saturating_sub(query.skip))
    }
}
