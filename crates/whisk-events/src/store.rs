//! `FeedStore`: the alarm and webhook registrations, in their own SQLite file
//! (`<data-dir>/feeds.db`) so the entity store's schema stays OpenWhisk's.
//!
//! A registration holds the owner's namespace and key uuid, never the key itself: the scheduler
//! fires as the namespace's current identity and stops when that identity's uuid changed.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use crate::schedule::AlarmSpec;
use crate::signature::Verifier;

/// File name of the feed registrations in the data directory.
pub const FEEDS_FILE_NAME: &str = "feeds.db";

#[derive(Debug, thiserror::Error)]
pub enum FeedStoreError {
    #[error("feed store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("feed store: stored alarm is unreadable: {0}")]
    Corrupt(String),
    #[error("feed store: {0}")]
    Io(#[from] std::io::Error),
    #[error("feed store: the connection lock was poisoned")]
    Poisoned,
}

pub type FeedStoreResult<T> = Result<T, FeedStoreError>;

/// One alarm: which trigger, whose, what schedule, and when it fires next.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmRegistration {
    /// `<namespace>/<trigger>`.
    pub trigger: String,
    pub namespace: String,
    pub name: String,
    pub owner_uuid: String,
    pub spec: AlarmSpec,
    /// Epoch ms of the next fire; `None` once the schedule is over.
    pub next_fire: Option<u64>,
    /// False when paused, finished or disabled.
    pub active: bool,
    /// Why the alarm is inactive, when it is.
    pub reason: Option<String>,
    /// Epoch ms of the last change of `active`.
    pub changed: u64,
    /// Epoch ms of the last fire, if any.
    pub last_fire: Option<u64>,
}

/// One webhook: its secret URL token, the trigger and the signature check.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRegistration {
    /// 64 lower-case hex digits, the last segment of the public URL.
    pub token: String,
    pub namespace: String,
    pub name: String,
    pub owner_uuid: String,
    pub verifier: Verifier,
}

/// The registrations; cheap to clone.
#[derive(Debug, Clone)]
pub struct FeedStore {
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

impl FeedStore {
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

    /// Inserts or replaces the alarm of `registration.trigger`.
    pub fn put_alarm(&self, registration: &AlarmRegistration) -> FeedStoreResult<()> {
        let spec = serde_json::to_string(&registration.spec)
            .map_err(|error| FeedStoreError::Corrupt(error.to_string()))?;
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

    /// Stores a fire's effect on an alarm (next and last fire, active, reason) only if the
    /// alarm is still registered, so a fire racing a DELETE never brings it back; whether it was.
    pub fn update_alarm_state(&self, registration: &AlarmRegistration) -> FeedStoreResult<bool> {
        self.with(|connection| {
            Ok(connection.execute(
                "UPDATE alarms SET next_fire = ?2, active = ?3, reason = ?4, changed = ?5, last_fire = ?6
                 WHERE trigger = ?1",
                params![
                    registration.trigger,
                    registration.next_fire.map(to_sql),
                    registration.active,
                    registration.reason,
                    to_sql(registration.changed),
                    registration.last_fire.map(to_sql),
                ],
            )? > 0)
        })
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

    /// The alarm of trigger `<namespace>/<name>`.
    pub fn get_alarm(&self, trigger: &str) -> FeedStoreResult<Option<AlarmRegistration>> {
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

    /// Removes an alarm; whether there was one.
    pub fn delete_alarm(&self, trigger: &str) -> FeedStoreResult<bool> {
        self.with(|connection| {
            Ok(connection.execute("DELETE FROM alarms WHERE trigger = ?1", [trigger])? > 0)
        })
    }

    /// Active alarms due at `now` (next fire at or before it), earliest first.
    pub fn due_alarms(&self, now: u64) -> FeedStoreResult<Vec<AlarmRegistration>> {
        self.with(|connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT {ALARM_COLUMNS} FROM alarms
                 WHERE active = 1 AND next_fire IS NOT NULL AND next_fire <= ?1
                 ORDER BY next_fire"
            ))?;
            let rows = statement.query_map([to_sql(now)], alarm_row)?;
            let mut due = Vec::new();
            for row in rows {
                due.push(row??);
            }
            Ok(due)
        })
    }

    /// The earliest next fire of any active alarm.
    pub fn earliest_fire(&self) -> FeedStoreResult<Option<u64>> {
        self.with(|connection| {
            let earliest: Option<i64> = connection.query_row(
                "SELECT MIN(next_fire) FROM alarms WHERE active = 1",
                [],
                |row| row.get(0),
            )?;
            Ok(earliest.map(from_sql))
        })
    }

    /// Inserts or replaces a webhook (one per trigger).
    pub fn put_webhook(&self, webhook: &WebhookRegistration) -> FeedStoreResult<()> {
        self.with(|connection| {
            connection.execute(
                "DELETE FROM webhooks WHERE namespace = ?1 AND name = ?2",
                params![webhook.namespace, webhook.name],
            )?;
            connection.execute(
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
            Ok(())
        })
    }

    /// The webhook behind a URL token.
    pub fn webhook_by_token(&self, token: &str) -> FeedStoreResult<Option<WebhookRegistration>> {
        self.webhook_where("token = ?1", params![token])
    }

    /// The webhook of a trigger.
    pub fn webhook_for(
        &self,
        namespace: &str,
        name: &str,
    ) -> FeedStoreResult<Option<WebhookRegistration>> {
        self.webhook_where("namespace = ?1 AND name = ?2", params![namespace, name])
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
                    webhook.verifier =
                        Verifier::from_stored(&provider, secret).ok_or_else(|| {
                            FeedStoreError::Corrupt(format!("webhook provider {provider}"))
                        })?;
                    Ok(webhook)
                })
                .transpose()
        })
    }

    /// Removes the webhook of a trigger; whether there was one.
    pub fn delete_webhook(&self, namespace: &str, name: &str) -> FeedStoreResult<bool> {
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
    let spec = match serde_json::from_str::<AlarmSpec>(&spec) {
        Ok(spec) => spec,
        Err(error) => return Ok(Err(FeedStoreError::Corrupt(error.to_string()))),
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

fn to_sql(millis: u64) -> i64 {
    i64::try_from(millis).unwrap_or(i64::MAX)
}

fn from_sql(millis: i64) -> u64 {
    u64::try_from(millis).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::schedule::{AlarmKind, DeleteAfterFire};

    pub(crate) fn registration(trigger: &str, next_fire: Option<u64>) -> AlarmRegistration {
        let (namespace, name) = trigger.split_once('/').unwrap();
        AlarmRegistration {
            trigger: trigger.into(),
            namespace: namespace.into(),
            name: name.into(),
            owner_uuid: "u".into(),
            spec: AlarmSpec {
                kind: AlarmKind::Alarm,
                cron: Some("* * * * * *".into()),
                timezone: None,
                minutes: None,
                date: None,
                start_date: None,
                stop_date: None,
                delete_after_fire: DeleteAfterFire::No,
                payload: serde_json::Map::new(),
            },
            next_fire,
            active: true,
            reason: None,
            changed: 1,
            last_fire: None,
        }
    }

    #[test]
    fn alarms_round_trip_and_only_active_due_ones_are_listed() {
        let store = FeedStore::in_memory().unwrap();
        store
            .put_alarm(&registration("guest/a", Some(100)))
            .unwrap();
        store.put_alarm(&registration("guest/b", Some(50))).unwrap();
        store
            .put_alarm(&registration("guest/later", Some(500)))
            .unwrap();
        let mut paused = registration("guest/paused", Some(10));
        paused.active = false;
        store.put_alarm(&paused).unwrap();

        assert_eq!(store.get_alarm("guest/paused").unwrap(), Some(paused));
        let due: Vec<_> = store
            .due_alarms(100)
            .unwrap()
            .into_iter()
            .map(|alarm| alarm.trigger)
            .collect();
        assert_eq!(due, ["guest/b", "guest/a"]);
        assert_eq!(store.earliest_fire().unwrap(), Some(50));
        assert!(store.delete_alarm("guest/b").unwrap());
        assert!(!store.delete_alarm("guest/b").unwrap());
        assert_eq!(store.earliest_fire().unwrap(), Some(100));
    }

    #[test]
    fn alarms_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        FeedStore::open(dir.path())
            .unwrap()
            .put_alarm(&registration("guest/a", Some(7)))
            .unwrap();
        let reopened = FeedStore::open(dir.path()).unwrap();
        assert_eq!(
            reopened.get_alarm("guest/a").unwrap().unwrap().next_fire,
            Some(7)
        );
    }

    #[test]
    fn the_file_is_private_and_a_missing_directory_is_an_error() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        FeedStore::open(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(FEEDS_FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
        assert!(matches!(
            FeedStore::open(&dir.path().join("missing")),
            Err(FeedStoreError::Io(_))
        ));
    }

    #[test]
    fn a_corrupt_spec_is_an_error_not_a_panic() {
        let store = FeedStore::in_memory().unwrap();
        store.put_alarm(&registration("guest/a", Some(7))).unwrap();
        store.corrupt_for_tests();
        assert!(matches!(
            store.get_alarm("guest/a"),
            Err(FeedStoreError::Corrupt(_))
        ));
        assert!(matches!(
            store.due_alarms(10),
            Err(FeedStoreError::Corrupt(_))
        ));
    }

    #[test]
    fn one_webhook_per_trigger_found_by_token_or_trigger() {
        let store = FeedStore::in_memory().unwrap();
        let first = WebhookRegistration {
            token: "a".repeat(64),
            namespace: "guest".into(),
            name: "t".into(),
            owner_uuid: "u".into(),
            verifier: Verifier::GitHub { secret: "s".into() },
        };
        store.put_webhook(&first).unwrap();
        let second = WebhookRegistration {
            token: "b".repeat(64),
            verifier: Verifier::None,
            ..first.clone()
        };
        store.put_webhook(&second).unwrap();
        assert_eq!(store.webhook_by_token(&first.token).unwrap(), None);
        assert_eq!(
            store.webhook_by_token(&second.token).unwrap(),
            Some(second.clone())
        );
        assert_eq!(store.webhook_for("guest", "t").unwrap(), Some(second));
        assert!(store.delete_webhook("guest", "t").unwrap());
        assert_eq!(store.webhook_for("guest", "t").unwrap(), None);
    }
}
