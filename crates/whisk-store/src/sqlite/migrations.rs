//! The SQLite schema, as an append-only list of migrations.
//!
//! `PRAGMA user_version` records how many migrations a database has had.
//! Never edit a released migration: append a new one, so every existing
//! database can be brought forward step by step.

/// Migration `n` (1-based) is `MIGRATIONS[n - 1]`.
pub(crate) const MIGRATIONS: &[&str] = &[
    MIGRATION_1_INITIAL_SCHEMA,
    MIGRATION_2_PENDING_ACTIVATIONS,
    MIGRATION_3_PENDING_OWNER,
    MIGRATION_4_MINUTE_COUNTERS,
];

/// The schema version this build writes and understands.
pub(crate) fn latest_version() -> i64 {
    // The list is a compile-time constant with a handful of entries.
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// Entities, revision sequence, subjects with their namespaces and limits, activations.
///
/// Every index ends in the sort key used by the lists it serves (`updated` or
/// `start` descending, then the id), so lists and counts are index range scans
/// with no sort step. The partial `*_public_*` indexes serve lists that other
/// namespaces see (published packages that are not bindings).
const MIGRATION_1_INITIAL_SCHEMA: &str = "
CREATE TABLE entities (
    doc_id         TEXT    NOT NULL PRIMARY KEY,
    entity_type    TEXT    NOT NULL,
    namespace      TEXT    NOT NULL,
    root_namespace TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    updated        INTEGER NOT NULL,
    publish        INTEGER NOT NULL,
    binding        INTEGER NOT NULL,
    revision       INTEGER NOT NULL,
    document       TEXT    NOT NULL
);
CREATE INDEX entities_by_root ON entities (entity_type, root_namespace, updated DESC, doc_id);
CREATE INDEX entities_by_path ON entities (entity_type, namespace, updated DESC, doc_id);
CREATE INDEX entities_public_by_root ON entities (entity_type, root_namespace, updated DESC, doc_id)
    WHERE publish = 1 AND binding = 0;
CREATE INDEX entities_public_by_path ON entities (entity_type, namespace, updated DESC, doc_id)
    WHERE publish = 1 AND binding = 0;

CREATE TABLE sequences (
    name  TEXT    NOT NULL PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO sequences (name, value) VALUES ('entity_revision', 0);

CREATE TABLE subjects (
    subject TEXT    NOT NULL PRIMARY KEY,
    blocked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE namespaces (
    namespace TEXT NOT NULL PRIMARY KEY,
    subject   TEXT NOT NULL REFERENCES subjects (subject) ON DELETE CASCADE,
    uuid      TEXT NOT NULL UNIQUE,
    key_hash  BLOB NOT NULL
);
CREATE INDEX namespaces_by_subject ON namespaces (subject, namespace);
CREATE TABLE namespace_limits (
    namespace TEXT NOT NULL PRIMARY KEY REFERENCES namespaces (namespace) ON DELETE CASCADE,
    document  TEXT NOT NULL
);

CREATE TABLE activations (
    namespace     TEXT    NOT NULL,
    activation_id TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    path_name     TEXT,
    start         INTEGER NOT NULL,
    document      TEXT    NOT NULL,
    PRIMARY KEY (namespace, activation_id)
);
CREATE INDEX activations_by_start ON activations (namespace, start DESC, activation_id);
CREATE INDEX activations_by_name ON activations (namespace, name, start DESC, activation_id);
CREATE INDEX activations_by_path_name ON activations (namespace, path_name, start DESC, activation_id);
CREATE INDEX activations_for_retention ON activations (start);
";

/// Activations accepted by a controller whose record is not written yet.
///
/// A row is written before the activation is published and deleted in the same transaction
/// that stores its record, so whatever is left here after a crash is exactly the work that was
/// lost; the next start closes each with a record saying so. `document` is the record to
/// complete in that case.
const MIGRATION_2_PENDING_ACTIVATIONS: &str = "
CREATE TABLE pending_activations (
    namespace     TEXT    NOT NULL,
    activation_id TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    path_name     TEXT,
    start         INTEGER NOT NULL,
    document      TEXT    NOT NULL,
    PRIMARY KEY (namespace, activation_id)
);
";

/// Who wrote a pending note (a cluster controller's name; `''` for standalone), so that a
/// controller closes only its own notes at start.
const MIGRATION_3_PENDING_OWNER: &str = "
ALTER TABLE pending_activations ADD COLUMN owner TEXT NOT NULL DEFAULT '';
";

/// Per-minute throttle counters (`key` names the throttle and the namespace), one row per key
/// and wall-clock minute, bumped with an upsert so that concurrent writers never lose a count.
const MIGRATION_4_MINUTE_COUNTERS: &str = "
CREATE TABLE minute_counters (
    key    TEXT    NOT NULL,
    minute INTEGER NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (key, minute)
);
";
