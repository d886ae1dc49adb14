//! [`SubjectStore`] on PostgreSQL.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use tokio_postgres::Row;
use whisk_model::{AuthKey, Identity, NamespaceKey, NamespaceLimits, Subject};

use super::Database;
use crate::error::{StoreError, StoreResult};
use crate::subject::{KeyHash, SubjectStore};

/// Subjects, namespaces (with hashed keys) and limit overrides.
#[derive(Debug, Clone)]
pub struct PostgresSubjectStore {
    database: Database,
}

impl PostgresSubjectStore {
    pub(crate) fn new(database: Database) -> PostgresSubjectStore {
        PostgresSubjectStore { database }
    }
}

/// The columns of one namespace joined with its subject and overrides.
const IDENTITY_SELECT: &str = "SELECT s.subject, s.blocked, n.namespace, n.uuid, n.key_hash, l.document \
     FROM namespaces n \
     JOIN subjects s ON s.subject = n.subject \
     LEFT JOIN namespace_limits l ON l.namespace = n.namespace";

struct IdentityRow {
    subject: String,
    blocked: bool,
    namespace: String,
    uuid: String,
    key_hash: Vec<u8>,
    limits: Option<String>,
}

impl IdentityRow {
    fn read(row: &Row) -> StoreResult<IdentityRow> {
        Ok(IdentityRow {
            subject: row.try_get(0)?,
            blocked: row.try_get(1)?,
            namespace: row.try_get(2)?,
            uuid: row.try_get(3)?,
            key_hash: row.try_get(4)?,
            limits: row.try_get(5)?,
        })
    }

    fn into_identity(self) -> StoreResult<Identity> {
        let limits = match self.limits {
            Some(text) => decode_limits(&self.namespace, &text)?,
            None => NamespaceLimits::default(),
        };
        Ok(Identity {
            subject: self.subject,
            namespace: self.namespace,
            uuid: self.uuid,
            limits,
        })
    }
}

fn decode_limits(namespace: &str, text: &str) -> StoreResult<NamespaceLimits> {
    serde_json::from_str(text)
        .map_err(|error| StoreError::Corrupt(format!("limits of namespace '{namespace}': {error}")))
}

/// Refuses a new namespace credential whose name or uuid is already in use,
/// with a message that says which. A concurrent insert that slips past the
/// check still fails on the unique constraints, as `AlreadyExists`.
async fn ensure_namespace_free(
    transaction: &Transaction<'_>,
    namespace: &str,
    uuid: &str,
) -> StoreResult<()> {
    let namespace_taken = transaction
        .query_opt(
            "SELECT 1 FROM namespaces WHERE namespace = $1",
            &[&namespace],
        )
        .await?
        .is_some();
    if namespace_taken {
        return Err(StoreError::AlreadyExists(format!(
            "namespace '{namespace}'"
        )));
    }
    let uuid_taken = transaction
        .query_opt("SELECT 1 FROM namespaces WHERE uuid = $1", &[&uuid])
        .await?
        .is_some();
    if uuid_taken {
        return Err(StoreError::AlreadyExists(format!(
            "a namespace with credential uuid '{uuid}'"
        )));
    }
    Ok(())
}

async fn insert_namespace(
    transaction: &Transaction<'_>,
    subject_name: &str,
    namespace: &str,
    auth_key: &AuthKey,
) -> StoreResult<()> {
    ensure_namespace_free(transaction, namespace, &auth_key.uuid).await?;
    let key_hash = KeyHash::of(&auth_key.key);
    transaction
        .execute(
            "INSERT INTO namespaces (namespace, subject, uuid, key_hash) VALUES ($1, $2, $3, $4)",
            &[
                &namespace,
                &subject_name,
                &auth_key.uuid,
                &key_hash.as_bytes().as_slice(),
            ],
        )
        .await?;
    Ok(())
}

/// Groups `(subject, blocked, namespace?, uuid?)` rows, ordered by subject, into subjects.
fn collect_subjects(rows: &[Row]) -> StoreResult<Vec<Subject>> {
    let mut subjects: Vec<Subject> = Vec::new();
    for row in rows {
        let subject_name: String = row.try_get(0)?;
        let blocked: bool = row.try_get(1)?;
        let namespace: Option<String> = row.try_get(2)?;
        let uuid: Option<String> = row.try_get(3)?;
        let is_new_subject = subjects
            .last()
            .is_none_or(|last| last.subject != subject_name);
        if is_new_subject {
            subjects.push(Subject {
                subject: subject_name,
                blocked,
                namespaces: Vec::new(),
            });
        }
        if let (Some(name), Some(uuid), Some(subject)) = (namespace, uuid, subjects.last_mut()) {
            subject.namespaces.push(NamespaceKey { name, uuid });
        }
    }
    Ok(subjects)
}

const SUBJECTS_WITH_NAMESPACES: &str = "SELECT s.subject, s.blocked, n.namespace, n.uuid \
     FROM subjects s LEFT JOIN namespaces n ON n.subject = s.subject";

#[async_trait]
impl SubjectStore for PostgresSubjectStore {
    async fn create_subject(
        &self,
        subject_name: &str,
        namespace: &str,
        auth_key: &AuthKey,
    ) -> StoreResult<()> {
        let mut client = self.database.client().await?;
        let transaction = client.transaction().await?;
        let inserted = transaction
            .execute(
                "INSERT INTO subjects (subject, blocked) VALUES ($1, false) ON CONFLICT DO NOTHING",
                &[&subject_name],
            )
            .await?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists(format!(
                "subject '{subject_name}'"
            )));
        }
        insert_namespace(&transaction, subject_name, namespace, auth_key).await?;
        transaction.commit().await?;
        tracing::info!(subject = %subject_name, %namespace, uuid = %auth_key.uuid, "created subject");
        Ok(())
    }

    async fn add_namespace(
        &self,
        subject_name: &str,
        namespace: &str,
        auth_key: &AuthKey,
    ) -> StoreResult<()> {
        let mut client = self.database.client().await?;
        let transaction = client.transaction().await?;
        // Locks the subject row so a concurrent delete cannot orphan the new namespace.
        let exists = transaction
            .query_opt(
                "SELECT 1 FROM subjects WHERE subject = $1 FOR UPDATE",
                &[&subject_name],
            )
            .await?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound(format!("subject '{subject_name}'")));
        }
        insert_namespace(&transaction, subject_name, namespace, auth_key).await?;
        transaction.commit().await?;
        tracing::info!(subject = %subject_name, %namespace, uuid = %auth_key.uuid, "added namespace");
        Ok(())
    }

    async fn get_subject(&self, subject_name: &str) -> StoreResult<Option<Subject>> {
        let client = self.database.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "{SUBJECTS_WITH_NAMESPACES} WHERE s.subject = $1 ORDER BY n.namespace"
            ))
            .await?;
        let rows = client.query(&statement, &[&subject_name]).await?;
        Ok(collect_subjects(&rows)?.into_iter().next())
    }

    async fn list_subjects(&self) -> StoreResult<Vec<Subject>> {
        let client = self.database.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "{SUBJECTS_WITH_NAMESPACES} ORDER BY s.subject, n.namespace"
            ))
            .await?;
        let rows = client.query(&statement, &[]).await?;
        collect_subjects(&rows)
    }

    async fn delete_subject(&self, subject_name: &str) -> StoreResult<()> {
        let client = self.database.client().await?;
        // Namespaces and their limits go with it through ON DELETE CASCADE.
        let deleted = client
            .execute("DELETE FROM subjects WHERE subject = $1", &[&subject_name])
            .await?;
        if deleted == 0 {
            return Err(StoreError::NotFound(format!("subject '{subject_name}'")));
        }
        tracing::info!(subject = %subject_name, "deleted subject");
        Ok(())
    }

    async fn set_blocked(&self, subject_name: &str, blocked: bool) -> StoreResult<()> {
        let client = self.database.client().await?;
        let updated = client
            .execute(
                "UPDATE subjects SET blocked = $2 WHERE subject = $1",
                &[&subject_name, &blocked],
            )
            .await?;
        if updated == 0 {
            return Err(StoreError::NotFound(format!("subject '{subject_name}'")));
        }
        tracing::info!(subject = %subject_name, blocked, "changed subject block");
        Ok(())
    }

    async fn authenticate(&self, auth_key: &AuthKey) -> StoreResult<Option<Identity>> {
        let presented = KeyHash::of(&auth_key.key);
        let client = self.database.client().await?;
        let statement = client
            .prepare_cached(&format!("{IDENTITY_SELECT} WHERE n.uuid = $1"))
            .await?;
        let Some(row) = client.query_opt(&statement, &[&auth_key.uuid]).await? else {
            return Ok(None);
        };
        let row = IdentityRow::read(&row)?;
        let stored = KeyHash::from_stored(&row.key_hash).ok_or_else(|| {
            StoreError::Corrupt(format!("key hash of namespace '{}'", row.namespace))
        })?;
        if !stored.matches(&presented) || row.blocked {
            return Ok(None);
        }
        row.into_identity().map(Some)
    }

    async fn identity_for_namespace(&self, namespace: &str) -> StoreResult<Option<Identity>> {
        let client = self.database.client().await?;
        let statement = client
            .prepare_cached(&format!("{IDENTITY_SELECT} WHERE n.namespace = $1"))
            .await?;
        let row = client.query_opt(&statement, &[&namespace]).await?;
        match row.as_ref().map(IdentityRow::read).transpose()? {
            Some(row) if !row.blocked => row.into_identity().map(Some),
            _ => Ok(None),
        }
    }

    async fn get_limits(&self, namespace: &str) -> StoreResult<Option<NamespaceLimits>> {
        let client = self.database.client().await?;
        let row = client
            .query_opt(
                "SELECT document FROM namespace_limits WHERE namespace = $1",
                &[&namespace],
            )
            .await?;
        let text: Option<String> = row.map(|row| row.try_get(0)).transpose()?;
        text.map(|text| decode_limits(namespace, &text)).transpose()
    }

    async fn set_limits(&self, namespace: &str, limits: &NamespaceLimits) -> StoreResult<()> {
        let document = serde_json::to_string(limits).map_err(|error| {
            StoreError::InvalidInput(format!("limits cannot be serialized: {error}"))
        })?;
        let client = self.database.client().await?;
        // Inserting only when the namespace exists, in one statement, so a
        // concurrent subject delete cannot leave overrides without an owner
        // (the foreign key would refuse them anyway).
        let written = client
            .execute(
                "INSERT INTO namespace_limits (namespace, document) \
                 SELECT namespace, $2 FROM namespaces WHERE namespace = $1 \
                 ON CONFLICT (namespace) DO UPDATE SET document = excluded.document",
                &[&namespace, &document],
            )
            .await?;
        if written == 0 {
            return Err(StoreError::NotFound(format!("namespace '{namespace}'")));
        }
        tracing::info!(%namespace, limits = %document, "set namespace limits");
        Ok(())
    }

    async fn delete_limits(&self, namespace: &str) -> StoreResult<()> {
        let client = self.database.client().await?;
        let deleted = client
            .execute(
                "DELETE FROM namespace_limits WHERE namespace = $1",
                &[&namespace],
            )
            .await?;
        if deleted == 0 {
            return Err(StoreError::NotFound(format!(
                "limits of namespace '{namespace}'"
            )));
        }
        tracing::info!(%namespace, "deleted namespace limits");
        Ok(())
    }
}
