//! [`ActivationStore`] on SQLite.

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params, params_from_iter};

use super::{
    Database, clamp_to_sql_integer, from_sql_integer, parse_document, sql_limit, to_sql_integer,
};
use crate::activation::{ActivationEntry, ActivationQuery, ActivationStore};
use crate::error::{StoreError, StoreResult};

/// Activation records in the `activations` table.
#[derive(Debug, Clone)]
pub struct SqliteActivationStore {
    database: Database,
}

impl SqliteActivationStore {
    pub(crate) fn new(database: Database) -> SqliteActivationStore {
        SqliteActivationStore { database }
    }
}

/// The WHERE clause and parameters of a query.
///
/// Entity names cannot contain `/`, so a filter with a slash can only match a
/// `pkg/action` path name and one without can only match a bare name; picking
/// the one column lets SQLite use that column's index (an `OR` over both
/// columns would force a sort).
fn filter(query: &ActivationQuery) -> (String, Vec<Value>) {
    let mut condition = String::from("namespace = ?");
    let mut values = vec![Value::Text(query.namespace.clone())];
    if let Some(name) = &query.name {
        if name.contains('/') {
            condition.push_str(" AND path_name = ?");
        } else {
            condition.push_str(" AND name = ?");
        }
        values.push(Value::Text(name.clone()));
    }
    if let Some(since) = query.since {
        condition.push_str(" AND start >= ?");
        values.push(Value::Integer(clamp_to_sql_integer(since)));
    }
    if let Some(upto) = query.upto {
        condition.push_str(" AND start <= ?");
        values.push(Value::Integer(clamp_to_sql_integer(upto)));
    }
    (condition, values)
}

/// The list statement and parameters for a query, exposed so tests can check its query plan.
pub(crate) fn list_statement(query: &ActivationQuery) -> (String, Vec<Value>) {
    let (condition, mut values) = filter(query);
    values.push(Value::Integer(sql_limit(query.limit)));
    values.push(Value::Integer(clamp_to_sql_integer(query.skip)));
    (
        format!(
            "SELECT activation_id, document FROM activations WHERE {condition} \
             ORDER BY start DESC, activation_id LIMIT ? OFFSET ?"
        ),
        values,
    )
}

/// The count statement and parameters for a query, exposed so tests can check its query plan.
pub(crate) fn count_statement(query: &ActivationQuery) -> (String, Vec<Value>) {
    let (condition, values) = filter(query);
    (
        format!("SELECT count(*) FROM activations WHERE {condition}"),
        values,
    )
}

/// Checks an entry's names and encodes its `start` and document for SQLite.
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

#[async_trait]
impl ActivationStore for SqliteActivationStore {
    async fn put(&self, entry: ActivationEntry) -> StoreResult<()> {
        let (start, document) = checked_columns(&entry)?;
        self.database
            .write(move |transaction| {
                let inserted = transaction.execute(
                    "INSERT INTO activations (namespace, activation_id, name, path_name, start, document) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                    params![
                        entry.namespace,
                        entry.activation_id,
                        entry.name,
                        entry.path_name,
                        start,
                        document
                    ],
                )?;
                if inserted == 0 {
                    return Err(StoreError::AlreadyExists(format!(
                        "activation '{}' in namespace '{}'",
                        entry.activation_id, entry.namespace
                    )));
                }
                transaction.execute(
                    "DELETE FROM pending_activations WHERE namespace = ?1 AND activation_id = ?2",
                    params![entry.namespace, entry.activation_id],
                )?;
                tracing::debug!(
                    namespace = %entry.namespace,
                    activation_id = %entry.activation_id,
                    name = %entry.name,
                    "stored activation"
                );
                Ok(())
            })
            .await
    }

    async fn get(
        &self,
        namespace: &str,
        activation_id: &str,
    ) -> StoreResult<Option<serde_json::Value>> {
        let namespace = namespace.to_string();
        let activation_id = activation_id.to_string();
        self.database
            .run(move |connection| {
                let text: Option<String> = connection
                    .prepare_cached(
                        "SELECT document FROM activations WHERE namespace = ?1 AND activation_id = ?2",
                    )?
                    .query_row(params![namespace, activation_id], |row| row.get(0))
                    .optional()?;
                text.map(|text| parse_document(&text, &format!("activation '{activation_id}'")))
                    .transpose()
            })
            .await
    }

    async fn list(&self, query: &ActivationQuery) -> StoreResult<Vec<serde_json::Value>> {
        let (sql, values) = list_statement(query);
        self.database
            .run(move |connection| {
                let rows = connection
                    .prepare_cached(&sql)?
                    .query_map(params_from_iter(values), |row| {
                        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                rows.iter()
                    .map(|(activation_id, text)| {
                        parse_document(text, &format!("activation '{activation_id}'"))
                    })
                    .collect()
            })
            .await
    }

    async fn count(&self, query: &ActivationQuery) -> StoreResult<u64> {
        let (sql, values) = count_statement(query);
        let skip = query.skip;
        self.database
            .run(move |connection| {
                let total: i64 = connection
                    .prepare_cached(&sql)?
                    .query_row(params_from_iter(values), |row| row.get(0))?;
                Ok(from_sql_integer(total, "activation count")?.saturating_sub(skip))
            })
            .await
    }

    async fn delete_older_than(&self, epoch_ms: u64) -> StoreResult<u64> {
        let cutoff = clamp_to_sql_integer(epoch_ms);
        self.database
            .write(move |transaction| {
                let deleted = transaction
                    .execute("DELETE FROM activations WHERE start < ?1", params![cutoff])?;
                tracing::info!(
                    cutoff_epoch_ms = epoch_ms,
                    deleted,
                    "deleted old activations"
                );
                Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
            })
            .await
    }
    async fn put_pending(&self, entry: ActivationEntry) -> StoreResult<()> {
        self.put_pending_owned(entry, "").await
    }

    async fn put_pending_owned(&self, entry: ActivationEntry, owner: &str) -> StoreResult<()> {
        let (start, document) = checked_columns(&entry)?;
        let owner = owner.to_owned();
        self.database
            .write(move |transaction| {
                let recorded: bool = transaction
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM activations WHERE namespace = ?1 AND activation_id = ?2)",
                    )?
                    .query_row(params![entry.namespace, entry.activation_id], |row| row.get(0))?;
                let inserted = if recorded {
                    0
                } else {
                    transaction.execute(
                        "INSERT INTO pending_activations (namespace, activation_id, name, path_name, start, document, owner) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                        params![
                            entry.namespace,
                            entry.activation_id,
                            entry.name,
                            entry.path_name,
                            start,
                            document,
                            owner
                        ],
                    )?
                };
                if inserted == 0 {
                    return Err(StoreError::AlreadyExists(format!(
                        "activation '{}' in namespace '{}'",
                        entry.activation_id, entry.namespace
                    )));
                }
                Ok(())
            })
            .await
    }

    async fn remove_pending(&self, namespace: &str, activation_id: &str) -> StoreResult<()> {
        let namespace = namespace.to_string();
        let activation_id = activation_id.to_string();
        self.database
            .write(move |transaction| {
                transaction.execute(
                    "DELETE FROM pending_activations WHERE namespace = ?1 AND activation_id = ?2",
                    params![namespace, activation_id],
                )?;
                Ok(())
            })
            .await
    }

    async fn pending(&self) -> StoreResult<Vec<ActivationEntry>> {
        self.pending_where(None).await
    }

    async fn pending_owned(&self, owner: &str) -> StoreResult<Vec<ActivationEntry>> {
        self.pending_where(Some(owner.to_owned())).await
    }

    async fn pending_count(&self, namespace: &str) -> StoreResult<u64> {
        let namespace = namespace.to_owned();
        self.database
            .run(move |connection| {
                let count: i64 = connection
                    .prepare_cached(
                        "SELECT count(*) FROM pending_activations WHERE namespace = ?1",
                    )?
                    .query_row(params![namespace], |row| row.get(0))?;
                from_sql_integer(count, "pending activation count")
            })
            .await
    }

    async fn count_in_minute(&self, key: &str, minute: u64) -> StoreResult<u64> {
        let key = key.to_owned();
        let minute = clamp_to_sql_integer(minute);
        self.database
            .write(move |transaction| {
                let count: i64 = transaction
                    .prepare_cached(
                        "INSERT INTO minute_counters (key, minute, count) VALUES (?1, ?2, 1) \
                         ON CONFLICT (key, minute) DO UPDATE SET count = count + 1 \
                         RETURNING count",
                    )?
                    .query_row(params![key, minute], |row| row.get(0))?;
                transaction.execute(
                    "DELETE FROM minute_counters WHERE key = ?1 AND minute < ?2",
                    params![key, minute],
                )?;
                from_sql_integer(count, "minute counter")
            })
            .await
    }
}

impl SqliteActivationStore {
    /// Every open note, or only `owner`'s, oldest first.
    async fn pending_where(&self, owner: Option<String>) -> StoreResult<Vec<ActivationEntry>> {
        self.database
            .run(move |connection| {
                let rows = connection
                    .prepare_cached(
                        "SELECT namespace, activation_id, name, path_name, start, document \
                         FROM pending_activations WHERE ?1 IS NULL OR owner = ?1 \
                         ORDER BY start, namespace, activation_id",
                    )?
                    .query_map(params![owner], |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, String>(2)?,
                            row.get::<_, Option<String>>(3)?,
                            row.get::<_, i64>(4)?,
                            row.get::<_, String>(5)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                rows.into_iter()
                    .map(|(namespace, activation_id, name, path_name, start, text)| {
                        let document = parse_document(
                            &text,
                            &format!("pending activation '{activation_id}'"),
                        )?;
                        Ok(ActivationEntry {
                            start: from_sql_integer(start, "pending activation start")?,
                            namespace,
                            activation_id,
                            name,
                            path_name,
                            document,
                        })
                    })
                    .collect()
            })
            .await
    }
}
