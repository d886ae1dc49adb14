//! The conformance suite on SQLite, plus what only the SQLite adapter can show:
//! the file on disk, migrations, corruption handling and query plans.

#![allow(clippy::unwrap_used)] // a panic is the right way for a test to fail

use std::path::Path;

use rusqlite::Connection;
use whisk_model::{EntityType, NamespaceLimits};

use super::{DATABASE_FILE_NAME, activation, entity, migrations};
use crate::conformance::{test_activation, test_entity, test_key, test_package};
use crate::{ActivationQuery, EntityQuery, EntityScope, Store, StoreError, open_sqlite};

async fn fresh_sqlite_store() -> (Store, tempfile::TempDir) {
    let directory = tempfile::tempdir().unwrap();
    let store = open_sqlite(directory.path()).unwrap();
    (store, directory)
}

crate::store_conformance_tests!(fresh_sqlite_store);

/// Every byte SQLite has written for the store: the database, its WAL and shared memory.
fn database_bytes(directory: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        let is_database_file = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with(DATABASE_FILE_NAME));
        if is_database_file {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[tokio::test]
async fn keys_are_not_stored_in_plain_text() {
    let (store, directory) = fresh_sqlite_store().await;
    let key = test_key("uuid-visible-in-file", 'Q');
    let second_key = test_key("uuid-second-visible", 'W');
    store
        .subjects
        .create_subject("secret-keeper", "secrets", &key)
        .await
        .unwrap();
    store
        .subjects
        .add_namespace("secret-keeper", "more-secrets", &second_key)
        .await
        .unwrap();
    assert!(store.subjects.authenticate(&key).await.unwrap().is_some());

    let bytes = database_bytes(directory.path());
    // The uuid is not secret and proves we are looking at the right bytes.
    assert!(contains(&bytes, key.uuid.as_bytes()));
    assert!(contains(&bytes, second_key.uuid.as_bytes()));
    assert!(!contains(&bytes, key.key.as_bytes()));
    assert!(!contains(&bytes, second_key.key.as_bytes()));
    assert!(!contains(&bytes, key.to_string().as_bytes()));
}

#[tokio::test]
async fn creates_missing_data_directory() {
    let directory = tempfile::tempdir().unwrap();
    let nested = directory.path().join("a").join("b");
    let store = open_sqlite(&nested).unwrap();
    store
        .entities
        .put(test_entity(EntityType::Action, "guest", "x", 1), None)
        .await
        .unwrap();
    assert!(nested.join(DATABASE_FILE_NAME).is_file());
}

#[tokio::test]
async fn data_survives_reopen() {
    let directory = tempfile::tempdir().unwrap();
    let key = test_key("uuid-persistent", 'p');
    let limits = NamespaceLimits {
        max_action_memory: Some(1024),
        ..NamespaceLimits::default()
    };
    let revision = {
        let store = open_sqlite(directory.path()).unwrap();
        store
            .subjects
            .create_subject("persistent", "durable", &key)
            .await
            .unwrap();
        store.subjects.set_limits("durable", &limits).await.unwrap();
        store
            .activations
            .put(test_activation("durable", "id1", "hello", None, 10))
            .await
            .unwrap();
        store
            .entities
            .put(test_package("durable", "pkg", 5, true, false), None)
            .await
            .unwrap()
    };

    let store = open_sqlite(directory.path()).unwrap();
    let package = store.entities.get("durable/pkg").await.unwrap().unwrap();
    assert_eq!(package.revision, revision);
    assert!(package.publish);
    let identity = store.subjects.authenticate(&key).await.unwrap().unwrap();
    assert_eq!(identity.namespace, "durable");
    assert_eq!(identity.limits, limits);
    assert_eq!(
        store
            .activations
            .count(&ActivationQuery::new("durable"))
            .await
            .unwrap(),
        1
    );
    let next = store
        .entities
        .put(test_entity(EntityType::Action, "durable", "new", 6), None)
        .await
        .unwrap();
    assert!(
        next > revision,
        "the revision sequence continues after reopen"
    );
}

#[test]
fn fresh_database_has_latest_schema_version() {
    let directory = tempfile::tempdir().unwrap();
    open_sqlite(directory.path()).unwrap();
    let connection = Connection::open(directory.path().join(DATABASE_FILE_NAME)).unwrap();
    let version: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, migrations::latest_version());
    assert!(version >= 1);
    let journal_mode: String = connection
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(journal_mode, "wal");
}

#[test]
fn refuses_database_from_newer_schema() {
    let directory = tempfile::tempdir().unwrap();
    open_sqlite(directory.path()).unwrap();
    let newer = migrations::latest_version() + 1;
    {
        let connection = Connection::open(directory.path().join(DATABASE_FILE_NAME)).unwrap();
        connection
            .pragma_update(None, "user_version", newer)
            .unwrap();
    }
    let error = open_sqlite(directory.path()).unwrap_err();
    match &error {
        StoreError::SchemaTooNew { found, supported } => {
            assert_eq!(*found, newer);
            assert_eq!(*supported, migrations::latest_version());
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert!(error.to_string().contains("newer"));
}

#[test]
fn reopening_does_not_reapply_migrations() {
    let directory = tempfile::tempdir().unwrap();
    open_sqlite(directory.path()).unwrap();
    // Migration 1 creates tables without IF NOT EXISTS, so running it twice would fail.
    open_sqlite(directory.path()).unwrap();
}

#[tokio::test]
async fn unparsable_documents_are_reported_corrupt() {
    let (store, directory) = fresh_sqlite_store().await;
    store
        .entities
        .put(test_entity(EntityType::Action, "guest", "broken", 1), None)
        .await
        .unwrap();
    store
        .activations
        .put(test_activation("guest", "broken-id", "broken", None, 1))
        .await
        .unwrap();
    store
        .subjects
        .create_subject("broken-user", "guest", &test_key("uuid-broken", 'b'))
        .await
        .unwrap();
    store
        .subjects
        .set_limits("guest", &NamespaceLimits::default())
        .await
        .unwrap();
    {
        let connection = Connection::open(directory.path().join(DATABASE_FILE_NAME)).unwrap();
        connection
            .execute_batch(
                "UPDATE entities SET document = '{not json';
                 UPDATE activations SET document = '[1,';
                 UPDATE namespace_limits SET document = '{\"invocationsPerMinute\": \"many\"}';",
            )
            .unwrap();
    }

    let get = store.entities.get("guest/broken").await;
    assert!(matches!(get, Err(StoreError::Corrupt(_))), "got {get:?}");
    let query = EntityQuery::new(EntityType::Action, EntityScope::Exact("guest".to_string()));
    let list = store.entities.list(&query).await;
    assert!(matches!(list, Err(StoreError::Corrupt(_))), "got {list:?}");
    let activation = store.activations.get("guest", "broken-id").await;
    assert!(
        matches!(activation, Err(StoreError::Corrupt(_))),
        "got {activation:?}"
    );
    let activations = store.activations.list(&ActivationQuery::new("guest")).await;
    assert!(
        matches!(activations, Err(StoreError::Corrupt(_))),
        "got {activations:?}"
    );
    let limits = store.subjects.get_limits("guest").await;
    assert!(
        matches!(limits, Err(StoreError::Corrupt(_))),
        "got {limits:?}"
    );
}

#[tokio::test]
async fn unknown_entity_type_is_reported_corrupt() {
    let (store, directory) = fresh_sqlite_store().await;
    store
        .entities
        .put(test_entity(EntityType::Rule, "guest", "odd", 1), None)
        .await
        .unwrap();
    {
        let connection = Connection::open(directory.path().join(DATABASE_FILE_NAME)).unwrap();
        connection
            .execute("UPDATE entities SET entity_type = 'gizmo'", [])
            .unwrap();
    }
    let get = store.entities.get("guest/odd").await;
    assert!(matches!(get, Err(StoreError::Corrupt(_))), "got {get:?}");
}

/// The plan SQLite picks for a statement; each line is one step.
fn query_plan(connection: &Connection, sql: &str, parameter_count: usize) -> Vec<String> {
    let mut statement = connection
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap();
    let nulls = vec![rusqlite::types::Value::Null; parameter_count];
    statement
        .query_map(rusqlite::params_from_iter(nulls), |row| {
            row.get::<_, String>(3)
        })
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap()
}

fn assert_index_search(plan: &[String], sql: &str) {
    assert!(
        plan.iter()
            .any(|step| step.starts_with("SEARCH") && step.contains("INDEX")),
        "{sql} must search an index, plan: {plan:?}"
    );
    assert!(
        plan.iter().all(|step| !step.contains("TEMP B-TREE")),
        "{sql} must not sort, plan: {plan:?}"
    );
    assert!(
        plan.iter().all(|step| !step.starts_with("SCAN")),
        "{sql} must not scan a table, plan: {plan:?}"
    );
}

#[test]
fn every_list_and_count_is_an_index_search() {
    let directory = tempfile::tempdir().unwrap();
    open_sqlite(directory.path()).unwrap();
    let connection = Connection::open(directory.path().join(DATABASE_FILE_NAME)).unwrap();

    for scope in [
        EntityScope::Namespace("guest".to_string()),
        EntityScope::Exact("guest/pkg".to_string()),
    ] {
        for public_only in [false, true] {
            let query = EntityQuery {
                public_only,
                ..EntityQuery::new(EntityType::Package, scope.clone())
            };
            let list = entity::list_sql(&query);
            assert_index_search(&query_plan(&connection, &list, 4), &list);
            let count = entity::count_sql(&query);
            assert_index_search(&query_plan(&connection, &count, 2), &count);
        }
    }

    let name_filters = [None, Some("hello"), Some("pkg/hello")];
    for name in name_filters {
        for (since, upto) in [(None, None), (Some(1), Some(2))] {
            let query = ActivationQuery {
                name: name.map(str::to_string),
                since,
                upto,
                ..ActivationQuery::new("guest")
            };
            let (list, list_values) = activation::list_statement(&query);
            assert_index_search(&query_plan(&connection, &list, list_values.len()), &list);
            let (count, count_values) = activation::count_statement(&query);
            assert_index_search(&query_plan(&connection, &count, count_values.len()), &count);
        }
    }
}

#[tokio::test]
async fn activation_names_must_be_bare_and_path_names_two_segments() {
    let (store, _directory) = fresh_sqlite_store().await;
    let slashed = test_activation("guest", "id1", "pkg/hello", None, 1);
    assert!(matches!(
        store.activations.put(slashed).await,
        Err(StoreError::InvalidInput(_))
    ));
    let bare_path = test_activation("guest", "id2", "hello", Some("hello"), 1);
    assert!(matches!(
        store.activations.put(bare_path).await,
        Err(StoreError::InvalidInput(_))
    ));
    assert_eq!(
        store
            .activations
            .count(&ActivationQuery::new("guest"))
            .await
            .unwrap(),
        0
    );
}
