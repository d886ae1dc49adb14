//! The embedded adapter: every store in one SQLite file.

mod activation;
mod entity;
mod migrations;
mod subject;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use crate::error::{StoreError, StoreResult};

pub use activation::SqliteActivationStore;
pub use entity::SqliteEntityStore;
pub use subject::SqliteSubjectStore;

/// The file name of the database inside the data directory.
pub const DATABASE_FILE_NAME: &str = "whisk.db";

/// How long a statement waits for another process's lock before failing
/// (only matters if an admin tool opens the same file while the server runs).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One SQLite connection shared by the three stores.
///
/// A single connection behind a mutex serialises all access, which keeps
/// transactions trivially correct; SQLite executes these small indexed
/// statements in microseconds, so the lock is never held for long. Every use
/// runs on tokio's blocking pool so the async runtime's workers never wait on
/// disk I/O.
#[derive(Debug, Clone)]
pub(crate) struct Database {
    connection: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl Database {
    /// Opens (creating if needed) `whisk.db` in `data_dir` and brings its schema
    /// up to date. Blocking: call it at start-up, not from request handlers.
    pub(crate) fn open(data_dir: &Path) -> StoreResult<Database> {
        std::fs::create_dir_all(data_dir).map_err(|error| {
            StoreError::Unavailable(format!(
                "cannot create data directory {}: {error}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(DATABASE_FILE_NAME);
        let mut connection = Connection::open(&path).map_err(|error| {
            StoreError::Unavailable(format!("cannot open {}: {error}", path.display()))
        })?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        let journal_mode: String =
            connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !journal_mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), journal_mode, "sqlite refused WAL mode");
        }
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", true)?;
        migrate(&mut connection)?;
        tracing::info!(path = %path.display(), schema_version = migrations::latest_version(), "opened sqlite store");
        Ok(Database {
            connection: Arc::new(Mutex::new(connection)),
            path,
        })
    }

    /// Runs `operation` on the connection from tokio's blocking pool.
    pub(crate) async fn run<T, F>(&self, operation: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a half-done write
            // behind (an open transaction rolls back when dropped), so the
            // connection is still sound and poisoning can be ignored.
            let mut guard = connection.lock().unwrap_or_else(PoisonError::into_inner);
            operation(&mut guard)
        })
        .await
        .map_err(|error| StoreError::Unavailable(format!("store task did not complete: {error}")))?
    }

    /// Like [`Database::run`], inside a write transaction committed when
    /// `operation` succeeds and rolled back when it fails.
    pub(crate) async fn write<T, F>(&self, operation: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.run(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = operation(&transaction)?;
            transaction.commit()?;
            Ok(value)
        })
        .await
    }

    /// The database file, e.g. for tests that inspect its bytes.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Applies the migrations this database has not had yet, each in its own transaction.
fn migrate(connection: &mut Connection) -> StoreResult<()> {
    let current: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let latest = migrations::latest_version();
    if current > latest {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: latest,
        });
    }
    for (index, migration) in migrations::MIGRATIONS.iter().enumerate() {
        let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
        if version <= current {
            continue;
        }
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        transaction.execute_batch(migration)?;
        transaction.pragma_update(None, "user_version", version)?;
        transaction.commit()?;
        tracing::info!(schema_version = version, "applied sqlite migration");
    }
    Ok(())
}

/// Classifies SQLite failures: lock contention is retryable, a violated
/// uniqueness constraint means the record exists, the rest is a backend fault.
impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> StoreError {
        let Some(failure) = error.sqlite_error() else {
            return StoreError::Backend(error.to_string());
        };
        match (failure.code, failure.extended_code) {
            (ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked, _) => {
                StoreError::Unavailable(error.to_string())
            }
            (
                ErrorCode::ConstraintViolation,
                rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE,
            ) => StoreError::AlreadyExists(error.to_string()),
            _ => StoreError::Backend(error.to_string()),
        }
    }
}

/// Converts a caller's epoch-ms value or count for storage; SQLite integers are signed.
pub(crate) fn to_sql_integer(value: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(value)
        .map_err(|_| StoreError::InvalidInput(format!("{what} {value} is too large to store")))
}

/// Converts a query bound, where "larger than anything storable" means "no bound".
pub(crate) fn clamp_to_sql_integer(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Converts a stored integer back; a negative value can only come from corruption.
pub(crate) fn from_sql_integer(value: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} is negative")))
}

/// Parses a stored JSON document; failure means the row was damaged outside the store.
pub(crate) fn parse_document(text: &str, what: &str) -> StoreResult<serde_json::Value> {
    serde_json::from_str(text)
        .map_err(|error| StoreError::Corrupt(format!("{what} is not valid JSON: {error}")))
}

/// SQLite's `LIMIT` for an optional limit (`-1` = unlimited).
pub(crate) fn sql_limit(limit: Option<u64>) -> i64 {
    limit.map_or(-1, clamp_to_sql_integer)
}

#[cfg(test)]
mod tests;
