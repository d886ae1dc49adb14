//! The cluster adapter: every store in one PostgreSQL database (or one schema of it).
//!
//! The design mirrors the SQLite adapter: documents stored as the JSON text the
//! API serves, next to the few columns lists filter and sort on, with indexes
//! that end in each list's sort key. What changes is concurrency: several
//! controllers write at once, so every check-then-write is a single conditional
//! statement (or is guarded by a row or advisory lock) instead of relying on one
//! serialised connection.

mod activation;
mod entity;
mod migrations;
mod subject;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Config, NoTls};

use crate::Store;
use crate::error::{StoreError, StoreResult};

pub use activation::PostgresActivationStore;
pub use entity::PostgresEntityStore;
pub use subject::PostgresSubjectStore;

/// How connections to the server are secured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostgresTls {
    /// Plain TCP; for loopback or a network the operator already trusts.
    Disabled,
    /// TLS required, the server's certificate verified against the CA
    /// certificates in this PEM file (a private CA is the common case for a
    /// database, so no public root store is assumed).
    Required { ca_file: PathBuf },
}

/// Settings of [`open_postgres`](crate::open_postgres) beyond the connection URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    pub tls: PostgresTls,
    /// The schema holding whisk-rs's tables, created if missing; `None` uses the
    /// server's default search path. Lets several deployments (or tests) share
    /// one database without meeting. Lowercase letters, digits and `_` only.
    pub schema: Option<String>,
    /// The most connections this process keeps open.
    pub max_connections: usize,
    /// How long opening a connection, or waiting for a free one, may take
    /// before the operation fails as unavailable.
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> PostgresOptions {
        PostgresOptions {
            tls: PostgresTls::Disabled,
            schema: None,
            max_connections: 16,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// The connection pool the three stores share.
#[derive(Clone)]
pub(crate) struct Database {
    pool: Pool,
    /// `host:port/dbname`, for messages; never the URL, which may hold a password.
    target: Arc<str>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Connects, creates the schema if asked to, and migrates it.
    pub(crate) async fn open(url: &str, options: &PostgresOptions) -> StoreResult<Database> {
        let mut config: Config = url.parse().map_err(|error| {
            StoreError::InvalidInput(format!("not a PostgreSQL connection URL: {error}"))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if let Some(schema) = &options.schema {
            check_schema_name(schema)?;
            // Every pooled connection resolves table names in the schema.
            let search_path = format!("-c search_path={schema}");
            let combined = match config.get_options() {
                Some(existing) if !existing.is_empty() => format!("{existing} {search_path}"),
                _ => search_path,
            };
            config.options(&combined);
        }
        let target: Arc<str> = Arc::from(describe_target(&config));
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &options.tls {
            PostgresTls::Disabled => Manager::from_config(config, NoTls, manager_config),
            PostgresTls::Required { ca_file } => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                let connector = rustls_connector(ca_file)?;
                Manager::from_config(config, connector, manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|error| {
                StoreError::Backend(format!("cannot build connection pool: {error}"))
            })?;
        let database = Database { pool, target };
        let mut client = database.client().await?;
        if let Some(schema) = &options.schema {
            // The name was checked to be a plain identifier, so it needs no quoting.
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .await
                .or_else(|error| {
                    // Two processes creating the same schema at once: one loses, both are fine.
                    if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                        Ok(())
                    } else {
                        Err(StoreError::from(error))
                    }
                })?;
        }
        migrations::migrate(&mut client).await?;
        tracing::info!(
            target_database = %database.target,
            schema = options.schema.as_deref().unwrap_or("(default)"),
            tls = matches!(options.tls, PostgresTls::Required { .. }),
            schema_version = migrations::latest_version(),
            "opened postgres store"
        );
        Ok(database)
    }

    /// A pooled connection; `Unavailable` naming the server when none can be had.
    pub(crate) async fn client(&self) -> StoreResult<Object> {
        self.pool.get().await.map_err(|error| {
            let reason = match error {
                PoolError::Backend(error) => StoreError::from(error).to_string(),
                other => other.to_string(),
            };
            StoreError::Unavailable(format!(
                "cannot reach PostgreSQL at {}: {reason}",
                self.target
            ))
        })
    }
}

/// The cluster's database as a handle other crates can share: the store's pool, for crates
/// that keep tables of their own in the same schema (the feed provider's registrations) or need
/// a session of their own (a leader's advisory lock), without a second way to connect.
#[derive(Debug, Clone)]
pub struct PostgresDatabase {
    database: Database,
}

impl PostgresDatabase {
    /// Connects, creates the schema if asked to, and migrates the store's tables; see
    /// [`crate::open_postgres`] for the errors.
    pub async fn open(url: &str, options: &PostgresOptions) -> StoreResult<PostgresDatabase> {
        Ok(PostgresDatabase {
            database: Database::open(url, options).await?,
        })
    }

    /// The entity, subject and activation stores on this pool.
    pub fn store(&self) -> Store {
        Store {
            entities: Arc::new(PostgresEntityStore::new(self.database.clone())),
            subjects: Arc::new(PostgresSubjectStore::new(self.database.clone())),
            activations: Arc::new(PostgresActivationStore::new(self.database.clone())),
        }
    }

    /// A pooled connection (search path set to the schema); `Unavailable` when none can be had.
    pub async fn client(&self) -> StoreResult<Object> {
        self.database.client().await
    }

    /// A connection taken out of the pool for good: its session, and whatever session state
    /// it holds (advisory locks), ends when it is dropped, and the pool never hands it to
    /// anyone else.
    pub async fn dedicated_client(&self) -> StoreResult<deadpool_postgres::ClientWrapper> {
        Ok(Object::take(self.database.client().await?))
    }

    /// Applies the migrations of another crate's tables in this schema, as an append-only
    /// list of its own: `track` names its version table (`<track>_migrations`) and the
    /// advisory lock that lets processes starting together migrate once. `track` is
    /// lowercase letters, digits and `_`.
    pub async fn migrate_track(&self, track: &str, migrations: &[&str]) -> StoreResult<()> {
        let mut client = self.database.client().await?;
        migrations::migrate_track(
            &mut client,
            &format!("{track}_migrations"),
            &format!("whisk-{track}-migrations"),
            migrations,
        )
        .await
    }
}

/// Opens the three stores on one pool. Used by [`crate::open_postgres`].
pub(crate) async fn open(url: &str, options: &PostgresOptions) -> StoreResult<Store> {
    Ok(PostgresDatabase::open(url, options).await?.store())
}

/// Schema names go into SQL and connection options unquoted, so only plain
/// lowercase identifiers are accepted.
fn check_schema_name(schema: &str) -> StoreResult<()> {
    let mut characters = schema.chars();
    let plain = characters
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first == '_')
        && characters.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= 63;
    if plain {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "schema name '{schema}' must be lowercase letters, digits and '_' (at most 63, not starting with a digit)"
        )))
    }
}

/// `host:port/dbname` from a parsed URL, for logs and error messages.
fn describe_target(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".to_string());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let dbname = config.get_dbname().unwrap_or("(default)");
    format!("{host}:{port}/{dbname}")
}

/// A rustls connector (ring provider) trusting only the CAs in `ca_file`.
fn rustls_connector(ca_file: &Path) -> StoreResult<tokio_postgres_rustls::MakeRustlsConnect> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let unreadable = |error: &dyn fmt::Display| {
        StoreError::InvalidInput(format!(
            "cannot read CA certificates from {}: {error}",
            ca_file.display()
        ))
    };
    let mut roots = rustls::RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(ca_file)
        .map_err(|error| unreadable(&error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| unreadable(&error))?;
    if certificates.is_empty() {
        return Err(unreadable(&"no certificate in the file"));
    }
    for certificate in certificates {
        roots.add(certificate).map_err(|error| unreadable(&error))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| StoreError::Backend(format!("TLS setup failed: {error}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(client_config))
}

/// Classifies server and connection failures the way callers act on them.
impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> StoreError {
        if let Some(code) = error.code() {
            let message = match error.as_db_error() {
                Some(db_error) => db_error.to_string(),
                None => error.to_string(),
            };
            return if *code == SqlState::UNIQUE_VIOLATION {
                StoreError::AlreadyExists(message)
            } else if is_transient(code) {
                StoreError::Unavailable(message)
            } else {
                StoreError::Backend(message)
            };
        }
        let io_failure = std::error::Error::source(&error)
            .is_some_and(|source| source.downcast_ref::<std::io::Error>().is_some());
        if error.is_closed() || io_failure {
            StoreError::Unavailable(error.to_string())
        } else {
            StoreError::Backend(error.to_string())
        }
    }
}

/// Server states where retrying later may succeed: overload, shutdown, lost races.
fn is_transient(code: &SqlState) -> bool {
    [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::QUERY_CANCELED,
    ]
    .contains(code)
}

/// Converts a caller's epoch-ms value for storage; PostgreSQL integers are signed.
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

/// `LIMIT` for an optional limit (`NULL` = unlimited).
pub(crate) fn sql_limit(limit: Option<u64>) -> Option<i64> {
    limit.map(clamp_to_sql_integer)
}

#[cfg(test)]
mod tests;
