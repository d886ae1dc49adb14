//! [`ActivationStore`] on PostgreSQL.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;

use super::{
    Database, clamp_to_sql_integer, from_sql_integer, parse_document, sql_limit, to_sql_integer,
};
use crate::activation::{ActivationEntry, ActivationQuery, ActivationStore};
use crate::error::{StoreError, StoreResult};

/// Activation records in the `activations` table, notes in `pending_activations`.
#[derive(Debug, Clone)]
pub struct PostgresActivationStore {
    database: Database,
}

impl PostgresActivationStore {
    pub(crate) fn new(database: Database) -> PostgresActivationStore {
        PostgresActivationStore { database }
    }
}

/// One bound value of a dynamically built statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SqlValue {
    Text(String),
    Integer(i64),
    OptionalInteger(Option<i64>),
}

impl SqlValue {
    pub(crate) fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            SqlValue::Text(text) => text,
            SqlValue::Integer(integer) => integer,
            SqlValue::OptionalInteger(integer) => integer,
        }
    }
}

fn bind(values: &[SqlValue]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(SqlValue::as_sql).collect()
}

/// The WHERE clause and parameters of a query.
///
/// Entity names cannot contain `/`, so a filter with a slash can only match a
/// `pkg/action` path name and one without only a bare name; filtering on the
/// one column lets the planner walk that column's index in sort order (an `OR`
/// over both columns would force a sort). Only present filters become
/// conditions, so each combination gets a plan made for it.
fn filter(query: &ActivationQuery) -> (String, Vec<SqlValue>) {
    let mut values = vec![SqlValue::Text(query.namespace.clone())];
    let mut condition = String::from("namespace = $1");
    if let Some(name) = &query.name {
        let column = if name.contains('/') {
            "path_name"
        } else {
            "name"
        };
        values.push(SqlValue::Text(name.clone()));
        condition.push_str(&format!(" AND {column} = ${}", values.len()));
    }
    if let Some(since) = query.since {
        values.push(SqlValue::Integer(clamp_to_sql_integer(since)));
        condition.push_str(&format!(" AND start >= ${}", values.len()));
    }
    if let Some(upto) = query.upto {
        values.push(SqlValue::Integer(clamp_to_sql_integer(upto)));
        condition.push_str(&format!(" AND start <= ${}", values.len()));
    }
    (condition, values)
}

/// The list statement and parameters for a query, exposed so tests can check its plan.
pub(crate) fn list_statement(query: &ActivationQuery) -> (String, Vec<SqlValue>) {
    let (condition, mut values) = filter(query);
    values.push(SqlValue::OptionalInteger(sql_limit(query.limit)));
    let limit = values.len();
    values.push(SqlValue::Integer(clamp_to_sql_integer(query.skip)));
    let offset = values.len();
    (
        format!(
            "SELECT activation_id, document FROM activations WHERE {condition} \
             ORDER BY start DESC, activation_id LIMIT ${limit} OFFSET ${offset}"
        ),
        values,
    )
}

/// The count statement and parameters for a query, exposed so tests can check its plan.
pub(crate) fn count_statement(query: &ActivationQuery) -> (String, Vec<SqlValue>) {
    let (condition, values) = filter(query);
    (
        format!("SELECT count(*) FROM activations WHERE {condition}"),
        values,
    )
}

/// Checks an entry's names and encodes its `start` and document for storage.
fn checked_columns(entry: &ActivationEntry) -> StoreResult<(i64, String)> {
    if entry.name.contains('/') {
        return Err(StoreError::InvalidInput(format!(
            "activation name '{}' must be a bare name",
            entry.name
        )));
    }
    if let Some(path_name) = &entry.path_name
        && path_name.split('/').count() != 2
    {
        return Err(StoreError::InvalidInput(format!(
            "activation path name '{path_name}' is not of the form 'package/name'"
        )));
    }
    let start = to_sql_integer(entry.start, "activation start")?;
    let document = serde_json::to_string(&entry.document).map_err(|error| {
        StoreError::InvalidInput(format!("activation cannot be serialized: {error}"))
    })?;
    Ok((start, document))
}

/// Serialises `put` and `put_pending` of one activation for the rest of the transaction.
///
/// Each checks the other's table and then writes its own; without a common lock
/// both could pass their check before either commits and leave a record and a
/// note side by side. Different activations hash to different keys and do not wait.
async fn lock_activation(
    transaction: &Transaction<'_>,
    namespace: &str,
    activation_id: &str,
) -> StoreResult<()> {
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))",
            &[&namespace, &activation_id],
        )
        .await?;
    Ok(())
}

fn already_exists(entry: &ActivationEntry) -> StoreError {
    StoreError::AlreadyExists(format!(
        "activation '{}' in namespace '{}'",
        entry.activation_id, entry.namespace
    ))
}

#[async_trait]
impl ActivationStore for PostgresActivationStore {
    async fn put(&self, entry: ActivationEntry) -> StoreResult<()> {
        let (start, document) = checked_columns(&entry)?;
        let mut client = self.database.client().await?;
        let transaction = client.transaction().await?;
        lock_activation(&transaction, &entry.namespace, &entry.activation_id).await?;
        let inserted = transaction
            .execute(
                "INSERT INTO activations (namespace, activation_id, name, path_name, start, document) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[
                    &entry.namespace,
                    &entry.activation_id,
                    &entry.name,
                    &entry.path_name,
                    &start,
                    &document,
                ],
            )
            .await?;
        if inserted == 0 {
            return Err(already_exists(&entry));
        }
        transaction
            .execute(
                "DELETE FROM pending_activations WHERE namespace = $1 AND activation_id = $2",
                &[&entry.namespace, &entry.activation_id],
            )
            .await?;
        transaction.commit().await?;
        tracing::debug!(
            namespace = %entry.namespace,
            activation_id = %entry.activation_id,
            name = %entry.name,
            "stored activation"
        );
        Ok(())
    }

    async fn get(
        &self,
        namespace: &str,
        activation_id: &str,
    ) -> StoreResult<Option<serde_json::Value>> {
        let client = self.database.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT document FROM activations WHERE namespace = $1 AND activation_id = $2",
            )
            .await?;
        let row = client
            .query_opt(&statement, &[&namespace, &activation_id])
            .await?;
        let text: Option<String> = row.map(|row| row.try_get(0)).transpose()?;
        text.map(|text| parse_document(&text, &format!("activation '{activation_id}'")))
            .transpose()
    }

    async fn list(&self, query: &ActivationQuery) -> StoreResult<Vec<serde_json::Value>> {
        let (sql, values) = list_statement(query);
        let client = self.database.client().await?;
        let statement = client.prepare_cached(&sql).await?;
        let rows = client.query(&statement, &bind(&values)).await?;
        rows.iter()
            .map(|row| {
                let activation_id: String = row.try_get(0)?;
                let text: String = row.try_get(1)?;
                parse_document(&text, &format!("activation '{activation_id}'"))
            })
            .collect()
    }

    async fn count(&self, query: &ActivationQuery) -> StoreResult<u64> {
        let (sql, values) = count_statement(query);
        let client = self.database.client().await?;
        let statement = client.prepare_cached(&sql).await?;
        let total: i64 = client
            .query_one(&statement, &bind(&values))
            .await?
            .try_get(0)?;
        Ok(from_sql_integer(total, "activation count")?.saturating_sub(query.skip))
    }

    async fn delete_older_than(&self, epoch_ms: u64) -> StoreResult<u64> {
        let cutoff = clamp_to_sql_integer(epoch_ms);
        let client = self.database.client().await?;
        let deleted = client
            .execute("DELETE FROM activations WHERE start < $1", &[&cutoff])
            .await?;
        tracing::info!(
            cutoff_epoch_ms = epoch_ms,
            deleted,
            "deleted old activations"
        );
        Ok(deleted)
    }

    async fn put_pending(&self, entry: ActivationEntry) -> StoreResult<()> {
        self.put_pending_owned(entry, "").await
    }

    async fn put_pending_owned(&self, entry: ActivationEntry, owner: &str) -> StoreResult<()> {
        let (start, document) = checked_columns(&entry)?;
        let mut client = self.database.client().await?;
        let transaction = client.transaction().await?;
        lock_activation(&transaction, &entry.namespace, &entry.activation_id).await?;
        let recorded = transaction
            .query_opt(
                "SELECT 1 FROM activations WHERE namespace = $1 AND activation_id = $2",
                &[&entry.namespace, &entry.activation_id],
            )
            .await?
            .is_some();
        if recorded {
            return Err(already_exists(&entry));
        }
        let inserted = transaction
            .execute(
                "INSERT INTO pending_activations (namespace, activation_id, name, path_name, start, document, owner) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[
                    &entry.namespace,
                    &entry.activation_id,
                    &entry.name,
                    &entry.path_name,
                    &start,
                    &document,
                    &owner,
                ],
            )
            .await?;
        if inserted == 0 {
            return Err(already_exists(&entry));
        }
        transaction.commit().await?;
        Ok(())
    }

    async fn remove_pending(&self, namespace: &str, activation_id: &str) -> StoreResult<()> {
        let client = self.database.client().await?;
        client
            .execute(
                "DELETE FROM pending_activations WHERE namespace = $1 AND activation_id = $2",
                &[&namespace, &activation_id],
            )
            .await?;
        Ok(())
    }

    async fn pending(&self) -> StoreResult<Vec<ActivationEntry>> {
        self.pending_where(None).await
    }

    async fn pending_owned(&self, owner: &str) -> StoreResult<Vec<ActivationEntry>> {
        self.pending_where(Some(owner)).await
    }

    async fn pending_count(&self, namespace: &str) -> StoreResult<u64> {
        let client = self.database.client().await?;
        let count: i64 = client
            .query_one(
                "SELECT count(*) FROM pending_activations WHERE namespace = $1",
                &[&namespace],
            )
            .await?
            .try_get(0)?;
        from_sql_integer(count, "pending activation count")
    }

    async fn count_in_minute(&self, key: &str, minute: u64) -> StoreResult<u64> {
        let minute = clamp_to_sql_integer(minute);
        let client = self.database.client().await?;
        // One statement, so concurrent controllers serialise on the row and each sees its own
        // increment; the row of the previous minutes is dropped by whoever counts next.
        let count: i64 = client
            .query_one(
                "INSERT INTO minute_counters (key, minute, count) VALUES ($1, $2, 1) \
                 ON CONFLICT (key, minute) DO UPDATE SET count = minute_counters.count + 1 \
                 RETURNING count",
                &[&key, &minute],
            )
            .await?
            .try_get(0)?;
        client
            .execute(
                "DELETE FROM minute_counters WHERE key = $1 AND minute < $2",
                &[&key, &minute],
            )
            .await?;
        from_sql_integer(count, "minute counter")
    }
}

impl PostgresActivationStore {
    /// Every open note, or only `owner`'s, oldest first.
    async fn pending_where(&self, owner: Option<&str>) -> StoreResult<Vec<ActivationEntry>> {
        let client = self.database.client().await?;
        let rows = client
            .query(
                "SELECT namespace, activation_id, name, path_name, start, document \
                 FROM pending_activations WHERE $1::text IS NULL OR owner = $1 \
                 ORDER BY start, namespace, activation_id",
                &[&owner],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let activation_id: String = row.try_get(1)?;
                let text: String = row.try_get(5)?;
                Ok(ActivationEntry {
                    namespace: row.try_get(0)?,
                    name: row.try_get(2)?,
                    path_name: row.try_get(3)?,
                    start: from_sql_integer(row.try_get(4)?, "pending activation start")?,
                    document: parse_document(
                        &text,
                        &format!("pending activation '{activation_id}'"),
                    )?,
                    activation_id,
                })
            })
            .collect()
    }
}
