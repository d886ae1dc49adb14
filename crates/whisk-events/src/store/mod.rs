//! `FeedStore`: the alarm and webhook registrations, behind one seam with two adapters.
//!
//! Standalone keeps them in their own SQLite file (`<data-dir>/feeds.db`, [`SqliteFeeds`]), so
//! the entity store's schema stays OpenWhisk's; a cluster keeps them in its shared PostgreSQL
//! schema ([`PostgresFeeds`]), so every controller serves the same registrations and whichever
//! controller leads the scheduler sees them all.
//!
//! A registration holds the owner's namespace and key uuid, never the key itself: the scheduler
//! fires as the namespace's current identity and stops when that identity's uuid changed.

mod postgres;
mod sqlite;

#[cfg(test)]
pub(crate) mod conformance;

use std::fmt;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

pub use postgres::PostgresFeeds;
pub use sqlite::{FEEDS_FILE_NAME, SqliteFeeds};

use crate::schedule::AlarmSpec;
use crate::signature::Verifier;

#[derive(Debug, thiserror::Error)]
pub enum FeedStoreError {
    #[error("feed store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("feed store: {0}")]
    Postgres(#[from] whisk_store::StoreError),
    #[error("feed store: stored registration is unreadable: {0}")]
    Corrupt(String),
    #[error("feed store: {0}")]
    Io(#[from] std::io::Error),
    #[error("feed store: the connection lock was poisoned")]
    Poisoned,
}

impl From<tokio_postgres::Error> for FeedStoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        FeedStoreError::Postgres(error.into())
    }
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

/// The state an alarm must still be in for a conditional update to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub next_fire: Option<u64>,
    pub active: bool,
}

impl Expected {
    /// What `alarm` holds now.
    pub fn of(alarm: &AlarmRegistration) -> Self {
        Self {
            next_fire: alarm.next_fire,
            active: alarm.active,
        }
    }
}

/// What an adapter keeps. Every adapter passes the suite in `conformance.rs`.
#[async_trait]
pub trait FeedBackend: Send + Sync + fmt::Debug {
    /// Inserts or replaces the alarm of `registration.trigger`.
    async fn put_alarm(&self, registration: &AlarmRegistration) -> FeedStoreResult<()>;

    /// Stores a fire's effect on an alarm (next and last fire, active, reason, changed) only
    /// if the alarm is still registered and still in the `expected` state; whether it was.
    ///
    /// This compare-and-set is how a scheduler claims a due occurrence: of two schedulers
    /// that read the same due alarm, only the one whose update moves `next_fire` on fires it,
    /// and a fire racing a DELETE, PAUSE or UPDATE never undoes it.
    async fn update_alarm_if(
        &self,
        registration: &AlarmRegistration,
        expected: Expected,
    ) -> FeedStoreResult<bool>;

    /// The alarm of trigger `<namespace>/<name>`.
    async fn get_alarm(&self, trigger: &str) -> FeedStoreResult<Option<AlarmRegistration>>;

    /// Removes an alarm; whether there was one.
    async fn delete_alarm(&self, trigger: &str) -> FeedStoreResult<bool>;

    /// Active alarms due at `now` (next fire at or before it), earliest first.
    async fn due_alarms(&self, now: u64) -> FeedStoreResult<Vec<AlarmRegistration>>;

    /// The earliest next fire of any active alarm.
    async fn earliest_fire(&self) -> FeedStoreResult<Option<u64>>;

    /// Inserts or replaces a webhook (one per trigger: an older one of the trigger goes).
    async fn put_webhook(&self, webhook: &WebhookRegistration) -> FeedStoreResult<()>;

    /// The webhook behind a URL token.
    async fn webhook_by_token(&self, token: &str) -> FeedStoreResult<Option<WebhookRegistration>>;

    /// The webhook of a trigger.
    async fn webhook_for(
        &self,
        namespace: &str,
        name: &str,
    ) -> FeedStoreResult<Option<WebhookRegistration>>;

    /// Removes the webhook of a trigger; whether there was one.
    async fn delete_webhook(&self, namespace: &str, name: &str) -> FeedStoreResult<bool>;
}

/// The registrations, whichever adapter keeps them; cheap to clone.
#[derive(Debug, Clone)]
pub struct FeedStore {
    backend: Arc<dyn FeedBackend>,
}

impl FeedStore {
    /// Opens (creating) `feeds.db` in `data_dir`: standalone's store.
    pub fn open(data_dir: &Path) -> FeedStoreResult<Self> {
        Ok(Self::from_backend(Arc::new(SqliteFeeds::open(data_dir)?)))
    }

    /// An SQLite store in memory, for tests.
    pub fn in_memory() -> FeedStoreResult<Self> {
        Ok(Self::from_backend(Arc::new(SqliteFeeds::in_memory()?)))
    }

    /// The registrations in the cluster's PostgreSQL schema, migrating their tables.
    pub async fn postgres(database: &whisk_store::PostgresDatabase) -> FeedStoreResult<Self> {
        Ok(Self::from_backend(Arc::new(
            PostgresFeeds::open(database.clone()).await?,
        )))
    }

    pub fn from_backend(backend: Arc<dyn FeedBackend>) -> Self {
        Self { backend }
    }
}

impl Deref for FeedStore {
    type Target = dyn FeedBackend;

    fn deref(&self) -> &Self::Target {
        self.backend.as_ref()
    }
}

/// Epoch ms as a column value (both databases store signed 64-bit integers).
pub(crate) fn to_sql(millis: u64) -> i64 {
    i64::try_from(millis).unwrap_or(i64::MAX)
}

pub(crate) fn from_sql(millis: i64) -> u64 {
    u64::try_from(millis).unwrap_or(0)
}

/// A stored alarm spec, parsed.
pub(crate) fn parse_spec(text: &str) -> FeedStoreResult<AlarmSpec> {
    serde_json::from_str(text).map_err(|error| FeedStoreError::Corrupt(error.to_string()))
}

pub(crate) fn spec_text(spec: &AlarmSpec) -> FeedStoreResult<String> {
    serde_json::to_string(spec).map_err(|error| FeedStoreError::Corrupt(error.to_string()))
}

/// A stored webhook's verifier, from its provider name and secret.
pub(crate) fn verifier(provider: &str, secret: Option<String>) -> FeedStoreResult<Verifier> {
    Verifier::from_stored(provider, secret)
        .ok_or_else(|| FeedStoreError::Corrupt(format!("webhook provider {provider}")))
}
