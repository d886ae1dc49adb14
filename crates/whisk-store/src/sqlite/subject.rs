//! [`SubjectStore`] on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use whisk_model::{AuthKey, Identity, NamespaceKey, NamespaceLimits, Subject};

use super::Database;
use crate::error::{StoreError, StoreResult};
use crate::subject::{KeyHash, SubjectStore};

/// Subjects, namespaces (with hashed keys) and limit overrides.
#[derive(Debug, Clone)]
pub struct SqliteSubjectStore {
    database: Database,
}

impl SqliteSubjectStore {
    pub(crate) fn new(database: Database) -> SqliteSubjectStore {
        SqliteSubjectStore { database }
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
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<IdentityRow> {
        Ok(IdentityRow {
            subject: row.get(0)?,
            blocked: row.get(1)?,
            namespace: row.get(2)?,
            uuid: row.get(3)?,
            key_hash: row.get(4)?,
            limits: row.get(5)?,
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
/// with a message that says which.
fn ensure_namespace_free(
    transaction: &rusqlite::Transaction<'_>,
    namespace: &str,
    uuid: &str,
) -> StoreResult<()> {
    let namespace_taken = transaction
        .query_row(
            "SELECT 1 FROM namespaces WHERE namespace = ?1",
            params![namespace],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if namespace_taken {
        return Err(StoreError::AlreadyExists(format!(
            "namespace '{namespace}'"
        )));
    }
    let uuid_taken = transaction
        .query_row(
            "SELECT 1 FROM namespaces WHERE uuid = ?1",
            params![uuid],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if uuid_taken {
        return Err(StoreError::AlreadyExists(format!(
            "a namespace with credential uuid '{uuid}'"
        )));
    }
    Ok(())
}

fn insert_namespace(
    transaction: &rusqlite::Transaction<'_>,
    subject_name: &str,
    namespace: &str,
    auth_key: &AuthKey,
) -> StoreResult<()> {
    ensure_namespace_free(transaction, namespace, &auth_key.uuid)?;
    let key_hash = KeyHash::of(&auth_key.key);
    transaction.execute(
        "INSERT INTO namespaces (namespace, subject, uuid, key_hash) VALUES (?1, ?2, ?3, ?4)",
        params![
            namespace,
            subject_name,
            auth_key.uuid,
            key_hash.as_bytes().as_slice()
        ],
    )?;
    Ok(())
}

fn subject_exists(
    transaction: &rusqlite::Transaction<'_>,
    subject_name: &str,
) -> StoreResult<bool> {
    Ok(transaction
        .query_row(
            "SELECT 1 FROM subjects WHERE subject = ?1",
            params![subject_name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Groups `(subject, blocked, namespace?, uuid?)` rows, ordered by subject, into subjects.
fn collect_subjects(rows: Vec<(String, bool, Option<String>, Option<String>)>) -> Vec<Subject> {
    let mut subjects: Vec<Subject> = Vec::new();
    for (subject_name, blocked, namespace, uuid) in rows {
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
    subjects
}

const SUBJECTS_WITH_NAMESPACES: &str = "SELECT s.subject, s.blocked, n.namespace, n.uuid \
     FROM subjects s LEFT JOIN namespaces n ON n.subject = s.subject";

#[async_trait]
impl SubjectStore for SqliteSubjectStore {
    async fn create_subject(
        &self,
        subject_name: &str,
        namespace: &str,
        auth_key: &AuthKey,
    ) -> StoreResult<()> {
        let subject_name = subject_name.to_string();
        let namespace = namespace.to_string();
        let auth_key = auth_key.clone();
        self.database
            .write(move |transaction| {
                if subject_exists(transaction, &subject_name)? {
                    return Err(StoreError::AlreadyExists(format!(
                        "subject '{subject_name}'"
                    )));
                }
                transaction.execute(
                    "INSERT INTO subjects (subject, blocked) VALUES (?1, 0)",
                    params![subject_name],
                )?;
                insert_namespace(transaction, &subject_name, &namespace, &auth_key)?;
                tracing::info!(subject = %subject_name, %namespace, uuid = %auth_key.uuid, "created subject");
                Ok(())
            })
            .await
    }

    async fn add_namespace(
        &self,
        subject_name: &str,
        namespace: &str,
        auth_key: &AuthKey,
    ) -> StoreResult<()> {
        let subject_name = subject_name.to_string();
        let namespace = namespace.to_string();
        let auth_key = auth_key.clone();
        self.database
            .write(move |transaction| {
                if !subject_exists(transaction, &subject_name)? {
                    return Err(StoreError::NotFound(format!("subject '{subject_name}'")));
                }
                insert_namespace(transaction, &subject_name, &namespace, &auth_key)?;
                tracing::info!(subject = %subject_name, %namespace, uuid = %auth_key.uuid, "added namespace");
                Ok(())
            })
            .await
    }

    async fn get_subject(&self, subject_name: &str) -> StoreResult<Option<Subject>> {
        let subject_name = subject_name.to_string();
        self.database
            .run(move |connection| {
                let rows = connection
                    .prepare_cached(&format!(
                        "{SUBJECTS_WITH_NAMESPACES} WHERE s.subject = ?1 ORDER BY n.namespace"
                    ))?
                    .query_map(params![subject_name], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(collect_subjects(rows).into_iter().next())
            })
            .await
    }

    async fn list_subjects(&self) -> StoreResult<Vec<Subject>> {
        self.database
            .run(move |connection| {
                let rows = connection
                    .prepare_cached(&format!(
                        "{SUBJECTS_WITH_NAMESPACES} ORDER BY s.subject, n.namespace"
                    ))?
                    .query_map([], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(collect_subjects(rows))
            })
            .await
    }

    async fn delete_subject(&self, subject_name: &str) -> StoreResult<()> {
        let subject_name = subject_name.to_string();
        self.database
            .write(move |transaction| {
                // Namespaces and their limits go with it through ON DELETE CASCADE.
                let deleted = transaction.execute(
                    "DELETE FROM subjects WHERE subject = ?1",
                    params![subject_name],
                )?;
                if deleted == 0 {
                    return Err(StoreError::NotFound(format!("subject '{subject_name}'")));
                }
                tracing::info!(subject = %subject_name, "deleted subject");
                Ok(())
            })
            .await
    }

    async fn set_blocked(&self, subject_name: &str, blocked: bool) -> StoreResult<()> {
        let subject_name = subject_name.to_string();
        self.database
            .write(move |transaction| {
                let updated = transaction.execute(
                    "UPDATE subjects SET blocked = ?2 WHERE subject = ?1",
                    params![subject_name, blocked],
                )?;
                if updated == 0 {
                    return Err(StoreError::NotFound(format!("subject '{subject_name}'")));
                }
                tracing::info!(subject = %subject_name, blocked, "changed subject block");
                Ok(())
            })
            .await
    }

    async fn authenticate(&self, auth_key: &AuthKey) -> StoreResult<Option<Identity>> {
        let uuid = auth_key.uuid.clone();
        let presented = KeyHash::of(&auth_key.key);
        self.database
            .run(move |connection| {
                let row = connection
                    .prepare_cached(&format!("{IDENTITY_SELECT} WHERE n.uuid = ?1"))?
                    .query_row(params![uuid], IdentityRow::read)
                    .optional()?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let stored = KeyHash::from_stored(&row.key_hash).ok_or_else(|| {
                    StoreError::Corrupt(format!("key hash of namespace '{}'", row.namespace))
                })?;
                if !stored.matches(&presented) || row.blocked {
                    return Ok(None);
                }
                row.into_identity().map(Some)
            })
            .await
    }

    async fn identity_for_namespace(&self, namespace: &str) -> StoreResult<Option<Identity>> {
        let namespace = namespace.to_string();
        self.database
            .run(move |connection| {
                let row = connection
                    .prepare_cached(&format!("{IDENTITY_SELECT} WHERE n.namespace = ?1"))?
                    .query_row(params![namespace], IdentityRow::read)
                    .optional()?;
                match row {
                    Some(row) if !row.blocked => row.into_identity().map(Some),
                    _ => Ok(None),
                }
            })
            .await
    }

    async fn get_limits(&self, namespace: &str) -> StoreResult<Option<NamespaceLimits>> {
        let namespace = namespace.to_string();
        self.database
            .run(move |connection| {
                let text: Option<String> = connection
                    .prepare_cached("SELECT document FROM namespace_limits WHERE namespace = ?1")?
                    .query_row(params![namespace], |row| row.get(0))
                    .optional()?;
                text.map(|text| decode_limits(&namespace, &text))
                    .transpose()
            })
            .await
    }

    async fn set_limits(&self, namespace: &str, limits: &NamespaceLimits) -> StoreResult<()> {
        let namespace = namespace.to_string();
        let document = serde_json::to_string(limits).map_err(|error| {
            StoreError::InvalidInput(format!("limits cannot be serialized: {error}"))
        })?;
        self.database
            .write(move |transaction| {
                let namespace_exists = transaction
                    .query_row(
                        "SELECT 1 FROM namespaces WHERE namespace = ?1",
                        params![namespace],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                if !namespace_exists {
                    return Err(StoreError::NotFound(format!("namespace '{namespace}'")));
                }
                transaction.execute(
                    "INSERT INTO namespace_limits (namespace, document) VALUES (?1, ?2) \
                     ON CONFLICT (namespace) DO UPDATE SET document = excluded.document",
                    params![namespace, document],
                )?;
                tracing::info!(%namespace, limits = %document, "set namespace limits");
                Ok(())
            })
            .await
    }

    async fn delete_limits(&self, namespace: &str) -> StoreResult<()> {
        let namespace = namespace.to_string();
        self.database
            .write(move |transaction| {
                let deleted = transaction.execute(
                    "DELETE FROM namespace_limits WHERE namespace = ?1",
                    params![namespace],
                )?;
                if deleted == 0 {
                    return Err(StoreError::NotFound(format!(
                        "limits of namespace '{namespace}'"
                    )));
                }
                tracing::info!(%namespace, "deleted namespace limits");
                Ok(())
            })
            .await
    }
}
