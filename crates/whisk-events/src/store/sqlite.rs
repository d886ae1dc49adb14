//! Standalone's adapter: the registrations in their own SQLite file, `<data-dir>/feeds.db`.
//!
//! One connection behind a mutex; each call is a short statement on a local file, run in
//! place like the rest of standalone's SQLite work.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    AlarmRegistration, Expected, FeedBackend, FeedStoreError, FeedStoreResult, WebhookRegistration,
    from_sql, parse_spec, spec_text, to_sql, verifier,
};
use crate::signature::Verifier;

/// File name of the feed registrations in the data directory.
pub const FEEDS_FILE_NAME: &str = "feeds.db";

/// The registrations in one SQLite file; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteFeeds {
    connection: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alarms (
    trigger     TEXT PRIMARY KEY,
    namespace   TEXT NOT NULL,
    name        TEXT NOT NULL,
    owner_uuid  TEXT NOT NULL,
    spec        TEXT NOT NULL,
    next_fire   INTEGER,
    active      INTEGER NOT NULL,
    reason      TEXT,
    changed     INTEGER NOT NULL,
    last_fire   INTEGER
);
CREATE INDEX IF NOT EXISTS alarms_due ON alarms (active, next_fire);
CREATE TABLE IF NOT EXISTS webhooks (
    token       TEXT PRIMARY KEY,
    namespace   TEXT NOT NULL,
    name        TEXT NOT NULL,
    owner_uuid  TEXT NOT NULL,
    provider    TEXT NOT NULL,
    secret      TEXT,
    UNIQUE (namespace, name)
);
";

impl SqliteFeeds {
    /// Opens (creating) `feeds.db` in `data_dir`.
    /// The file is made readable by its owner only: it holds webhook secrets.
    pub fn open(data_dir: &Path) -> FeedStoreResult<Self> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let path = data_dir.join(FEEDS_FILE_NAME);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let connection = Connection::open(&path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        Self::with_connection(connection)
    }

    /// A store in memory, for tests.
    pub fn in_memory() -> FeedStoreResult<Self> {
        Self::with_connection(Connection::open_in_memory()?)
    }

    fn with_connection(connection: Connection) -> FeedStoreResult<Self> {
        connection.execute_batch(SCHEMA)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    fn with<T>(&self, work: impl FnOnce(&Connection) -> FeedStoreResult<T>) -> FeedStoreResult<T> {
        let connection = self
            .connection
            .lock()
            .map_err(|_| FeedStoreError::Poisoned)?;
        work(&connection)
    }

    /// Makes every stored alarm spec unreadable, for tests of the error paths.
    #[cfg(test)]
    pub(crate) fn corrupt_for_tests(&self) {
        self.with(|connection| {
            connection.execute("UPDATE alarms SET spec = 'nope'", [])?;
            Ok(())
        })
        .ok();
    }

    fn webhook_where(
        &self,
        condition: &str,
        values: &[&dyn rusqlite::ToSql],
    ) -> FeedStoreResult<Option<WebhookRegistration>> {
        self.with(|connection| {
            connection
                .query_row(
                    &format!(
                        "SELECT token, namespace, name, owner_uuid, provider, secret
                         FROM webhooks WHERE {condition}"
                    ),
                    values,
                    |row| {
                        let provider: String = row.get(4)?;
                        let secret: Option<String> = row.get(5)?;
                        Ok((
                            WebhookRegistration {
                                token: row.get(0)?,
                                namespace: row.get(1)?,
                                name: row.get(2)?,
                                owner_uuid: row.get(3)?,
                                verifier: Verifier::None,
                            },
                            provider,
                            secret,
                        ))
                    },
                )
                .optional()?
                .map(|(mut webhook, provider, secret)| {
                    webhook.verifier = verifier(&provider, secret)?;
                    Ok(webhook)
                })
                .transpose()
        })
    }
}

#[async_trait]
impl FeedBackend for SqliteFeeds {
    async fn put_alarm(&self, registration: &AlarmRegistration) -> FeedStoreResult<()> {
        let spec = spec_text(&registration.spec)?;
        self.with(|connection| {
            connection.execute(
                "INSERT OR REPLACE INTO alarms
                 (trigger, namespace, name, owner_uuid, spec, next_fire, active, reason, changed, last_fire)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    registration.trigger,
                    registration.namespace,
                    registration.name,
                    registration.owner_uuid,
                    spec,
                    registration.next_fire.map(to_sql),
                    registration.active,
                    registration.reason,
                    to_sql(registration.changed),
                    registration.last_fire.map(to_sql),
                ],
            )?;
            Ok(())
        })
    }

    async fn update_alarm_if(
        &self,
        registration: &AlarmRegistration,
        expected: Expected,
    ) -> FeedStoreResult<bool> {
        self.with(|connection| {
            Ok(connection.execute(
                "UPDATE alarms SET next_fire = ?2, active = ?3, reason = ?4, changed = ?5, last_fire = ?6
                 WHERE trigger = ?1 AND next_fire IS ?7 AND active = ?8",
                params![
                    registration.trigger,
                    registration.next_fire.map(to_sql),
                    registration.active,
                    registration.reason,
                    to_sql(registration.changed),
                    registration.last_fire.map(to_sql),
                    expected.next_fire.map(to_sql),
                    expected.active,
                ],
            )? > 0)
        })
    }

    async fn get_alarm(&self, trigger: &str) -> FeedStoreResult<Option<AlarmRegistration>> {
        self.with(|connection| {
            connection
                .query_row(
                    &format!("SELECT {ALARM_COLUMNS} FROM alarms WHERE trigger = ?1"),
                    [trigger],
                    alarm_row,
                )
                .optional()?
                .transpose()
        })
    }

    async fn delete_alarm(&self, trigger: &str) -> FeedStoreResult<bool> {
        self.with(|connection| {
            Ok(connection.execute("DELETE FROM alarms WHERE trigger = ?1", [trigger])? > 0)
        })
    }

    async fn due_alarms(&self, now: u64) -> FeedStoreResult<Vec<AlarmRegistration>> {
        self.with(|connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT {ALARM_COLUMNS} FROM alarms
                 WHERE active = 1 AND next_fire IS NOT NULL AND next_fire <= ?1
                 ORDER BY next_fire, trigger"
            ))?;
            let rows = statement.query_map([to_sql(now)], alarm_row)?;
            let mut due = Vec::new();
            for row in rows {
                due.push(row??);
            }
            Ok(due)
        })
    }

    async fn earliest_fire(&self) -> FeedStoreResult<Option<u64>> {
        self.with(|connection| {
            let earliest: Option<i64> = connection.query_row(
                "SELECT MIN(next_fire) FROM alarms WHERE active = 1",
                [],
                |row| row.get(0),
            )?;
            Ok(earliest.map(from_sql))
        })
    }

    async fn put_webhook(&self, webhook: &WebhookRegistration) -> FeedStoreResult<()> {
        self.with(|connection| {
            let transaction = connection.unchecked_transaction()?;
            transaction.execute(
                "DELETE FROM webhooks WHERE namespace = ?1 AND name = ?2",
                params![webhook.namespace, webhook.name],
            )?;
            transaction.execute(
                "INSERT INTO webhooks (token, namespace, name, owner_uuid, provider, secret)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    webhook.token,
                    webhook.namespace,
                    webhook.name,
                    webhook.owner_uuid,
                    webhook.verifier.provider(),
                    webhook.verifier.secret(),
                ],
            )?;
            transaction.commit()?;
            Ok(())
        })
    }

    async fn webhook_by_token(&self, token: &str) -> FeedStoreResult<Option<WebhookRegistration>> {
        self.webhook_where("token = ?1", params![token])
    }

    async fn webhook_for(
        &self,
        namespace: &str,
        name: &str,
    ) -> FeedStoreResult<Option<WebhookRegistration>> {
        self.webhook_where("namespace = ?1 AND name = ?2", params![namespace, name])
    }

    async fn delete_webhook(&self, namespace: &str, name: &str) -> FeedStoreResult<bool> {
        self.with(|connection| {
            Ok(connection.execute(
                "DELETE FROM webhooks WHERE namespace = ?1 AND name = ?2",
                params![namespace, name],
            )? > 0)
        })
    }
}

const ALARM_COLUMNS: &str =
    "trigger, namespace, name, owner_uuid, spec, next_fire, active, reason, changed, last_fire";

/// Reads an alarm row; the inner error is a spec that no longer parses.
fn alarm_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<FeedStoreResult<AlarmRegistration>> {
    let spec: String = row.get(4)?;
    let spec = match parse_spec(&spec) {
        Ok(spec) => spec,
        Err(error) => return Ok(Err(error)),
    };
    Ok(Ok(AlarmRegistration {
        trigger: row.get(0)?,
        namespace: row.get(1)?,
        name: row.get(2)?,
        owner_uuid: row.get(3)?,
        spec,
        next_fire: row.get::<_, Option<i64>>(5)?.map(from_sql),
        active: row.get(6)?,
        reason: row.get(7)?,
        changed: from_sql(row.get(8)?),
        last_fire: row.get::<_, Option<i64>>(9)?.map(from_sql),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::conformance::{self, registration};

    #[tokio::test]
    async fn conformance() {
        conformance::run(&crate::FeedStore::from_backend(Arc::new(
            SqliteFeeds::in_memory().unwrap(),
        )))
        .await;
    }

    #[tokio::test]
    async fn alarms_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        SqliteFeeds::open(dir.path())
            .unwrap()
            .put_alarm(&registration("guest/a", Some(7)))
            .await
            .unwrap();
        let reopened = SqliteFeeds::open(dir.path()).unwrap();
        assert_eq!(
            reopened
                .get_alarm("guest/a")
                .await
                .unwrap()
                .unwrap()
                .next_fire,
            Some(7)
        );
    }

    #[test]
    fn the_file_is_private_and_a_missing_directory_is_an_error() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        SqliteFeeds::open(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(FEEDS_FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
        assert!(matches!(
            SqliteFeeds::open(&dir.path().join("missing")),
            Err(FeedStoreError::Io(_))
        ));
    }

    #[tokio::test]
    async fn a_corrupt_spec_is_an_error_not_a_panic() {
        let store = SqliteFeeds::in_memory().unwrap();
        store
            .put_alarm(&registration("guest/a", Some(7)))
            .await
            .unwrap();
        store.corrupt_for_tests();
        assert!(matches!(
            store.get_alarm("guest/a").await,
            Err(FeedStoreError::Corrupt(_))
        ));
        assert!(matches!(
            store.due_alarms(10).await,
            Err(FeedStoreError::Corrupt(_))
        ));
    }
}
