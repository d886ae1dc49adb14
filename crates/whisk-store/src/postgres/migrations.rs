//! The PostgreSQL schema, as an append-only list of numbered migrations.
//!
//! `schema_migrations` holds one row per applied migration. Never edit a
//! released migration: append a new one, so every existing database can be
//! brought forward step by step. Text columns that are sorted on use the `C`
//! collation, so ordering is by bytes whatever the database's locale (the same
//! order SQLite gives, which the conformance suite expects).

use deadpool_postgres::Object;

use crate::error::{StoreError, StoreResult};

/// Migration `n` (1-based) is `MIGRATIONS[n - 1]`.
pub(crate) const MIGRATIONS: &[&str] = &[
    MIGRATION_1_INITIAL_SCHEMA,
    MIGRATION_2_PENDING_OWNER,
    MIGRATION_3_MINUTE_COUNTERS,
];

/// The schema version this build writes and understands.
pub(crate) fn latest_version() -> i64 {
    // The list is a compile-time constant with a handful of entries.
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// Entities and their revision sequence, subjects with namespaces and limits,
/// activations and pending activation notes.
///
/// Every list index ends in the list's sort key (`updated` or `start`
/// descending, then the id), so lists are index range scans with no sort step;
/// the partial `*_public_*` indexes serve what other namespaces may see
/// (published packages that are not bindings), with the predicate spelled as
/// the queries spell it.
const MIGRATION_1_INITIAL_SCHEMA: &str = r#"
CREATE TABLE entities (
    doc_id         text COLLATE "C" NOT NULL PRIMARY KEY,
    entity_type    text    NOT NULL,
    namespace      text COLLATE "C" NOT NULL,
    root_namespace text COLLATE "C" NOT NULL,
    name           text COLLATE "C" NOT NULL,
    updated        bigint  NOT NULL,
    publish        boolean NOT NULL,
    binding        boolean NOT NULL,
    revision       bigint  NOT NULL,
    document       text    NOT NULL
);
CREATE INDEX entities_by_root ON entities (entity_type, root_namespace, updated DESC, doc_id);
CREATE INDEX entities_by_path ON entities (entity_type, namespace, updated DESC, doc_id);
CREATE INDEX entities_public_by_root ON entities (entity_type, root_namespace, updated DESC, doc_id)
    WHERE publish AND NOT binding;
CREATE INDEX entities_public_by_path ON entities (entity_type, namespace, updated DESC, doc_id)
    WHERE publish AND NOT binding;

CREATE SEQUENCE entity_revision AS bigint;

CREATE TABLE subjects (
    subject text COLLATE "C" NOT NULL PRIMARY KEY,
    blocked boolean NOT NULL DEFAULT false
);
CREATE TABLE namespaces (
    namespace text COLLATE "C" NOT NULL PRIMARY KEY,
    subject   text COLLATE "C" NOT NULL REFERENCES subjects (subject) ON DELETE CASCADE,
    uuid      text NOT NULL UNIQUE,
    key_hash  bytea NOT NULL
);
CREATE INDEX namespaces_by_subject ON namespaces (subject, namespace);
CREATE TABLE namespace_limits (
    namespace text COLLATE "C" NOT NULL PRIMARY KEY
        REFERENCES namespaces (namespace) ON DELETE CASCADE,
    document  text NOT NULL
);

CREATE TABLE activations (
    namespace     text COLLATE "C" NOT NULL,
    activation_id text COLLATE "C" NOT NULL,
    name          text COLLATE "C" NOT NULL,
    path_name     text COLLATE "C",
    start         bigint NOT NULL,
    document      text   NOT NULL,
    PRIMARY KEY (namespace, activation_id)
);
CREATE INDEX activations_by_start ON activations (namespace, start DESC, activation_id);
CREATE INDEX activations_by_name ON activations (namespace, name, start DESC, activation_id);
CREATE INDEX activations_by_path_name ON activations (namespace, path_name, start DESC, activation_id);
CREATE INDEX activations_for_retention ON activations (start);

CREATE TABLE pending_activations (
    namespace     text COLLATE "C" NOT NULL,
    activation_id text COLLATE "C" NOT NULL,
    name          text COLLATE "C" NOT NULL,
    path_name     text COLLATE "C",
    start         bigint NOT NULL,
    document      text   NOT NULL,
    PRIMARY KEY (namespace, activation_id)
);
"#;

/// Who wrote a pending note (a cluster controller's name; `''` when untagged), so that a
/// controller closes only its own notes at start.
const MIGRATION_2_PENDING_OWNER: &str = r#"
ALTER TABLE pending_activations ADD COLUMN owner text COLLATE "C" NOT NULL DEFAULT '';
"#;

/// Per-minute throttle counters shared by every controller (`key` names the throttle and the
/// namespace), one row per key and wall-clock minute, bumped with an atomic upsert.
const MIGRATION_3_MINUTE_COUNTERS: &str = r#"
CREATE TABLE minute_counters (
    key    text COLLATE "C" NOT NULL,
    minute bigint NOT NULL,
    count  bigint NOT NULL,
    PRIMARY KEY (key, minute)
);
"#;

/// Brings the current schema up to date in one transaction.
///
/// Controllers may start together, so the transaction first takes an advisory
/// lock keyed on the schema: the first one migrates, the others wait and then
/// find nothing left to do. DDL is transactional in PostgreSQL, so a failed
/// migration leaves the schema as it was.
pub(crate) async fn migrate(client: &mut Object) -> StoreResult<()> {
    migrate_track(client, "schema_migrations", "whisk-migrations", MIGRATIONS).await
}

/// Applies `migrations` (migration `n` is `migrations[n - 1]`) that the version table `table`
/// has not recorded yet, under an advisory lock named `lock` and keyed on the schema.
///
/// The store's own schema is one track; another crate keeping tables in the same schema
/// (the feed provider's registrations) keeps its own track, so neither numbering has to know
/// the other. `table` and `lock` come from code, never from input; `table` must still be a
/// plain identifier because it is spliced into the SQL.
pub(crate) async fn migrate_track(
    client: &mut Object,
    table: &str,
    lock: &str,
    migrations: &[&str],
) -> StoreResult<()> {
    if table.is_empty()
        || !table
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(StoreError::InvalidInput(format!(
            "migration table name '{table}' must be lowercase letters, digits and '_'"
        )));
    }
    let transaction = client.transaction().await?;
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock(hashtext($1 || ':' || coalesce(current_schema(), '')))",
            &[&lock],
        )
        .await?;
    transaction
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                 version    bigint PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )"
        ))
        .await?;
    let current: i64 = transaction
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {table}"),
            &[],
        )
        .await?
        .try_get(0)?;
    let latest = i64::try_from(migrations.len()).unwrap_or(i64::MAX);
    if current > latest {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: latest,
        });
    }
    for (index, migration) in migrations.iter().enumerate() {
        let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
        if version <= current {
            continue;
        }
        transaction.batch_execute(migration).await?;
        transaction
            .execute(
                &format!("INSERT INTO {table} (version) VALUES ($1)"),
                &[&version],
            )
            .await?;
        tracing::info!(
            track = table,
            schema_version = version,
            "applied postgres migration"
        );
    }
    transaction.commit().await?;
    Ok(())
}
