//! The conformance suite on PostgreSQL, plus what only this adapter can show:
//! connection failures, TLS and schema options, migrations, corruption
//! handling and query plans at scale.
//!
//! Tests that need a server read its URL from `WHISK_TEST_POSTGRES_URL`
//! (`.ci/postgres start DIR` prints it); without it they say so and return.
//! Each such test works in a schema of its own, dropped when it ends, so tests
//! running in parallel against one server never meet.

#![allow(clippy::unwrap_used)] // a panic is the right way for a test to fail

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;
use whisk_model::{EntityType, NamespaceLimits};

use super::activation::{self, SqlValue};
use super::{PostgresOptions, PostgresTls, entity, migrations};
use crate::conformance::{test_activation, test_entity, test_key};
use crate::{
    ActivationQuery, EntityQuery, EntityScope, Store, StoreError, StoreResult, open_postgres,
};

const URL_VARIABLE: &str = "WHISK_TEST_POSTGRES_URL";

/// The test server's URL, or `None` after telling why the test does nothing.
fn server_url() -> Option<String> {
    match std::env::var(URL_VARIABLE) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "{URL_VARIABLE} is not set: skipping this PostgreSQL test (`.ci/postgres start DIR` starts a server and prints it)"
            );
            None
        }
    }
}

/// A schema name no other test (in this or another process) uses.
fn unique_schema_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "whisk_test_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A plain connection outside the store, for setup and inspection.
async fn raw_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("test connection ended: {error}");
        }
    });
    client
}

/// One test's schema; dropped with everything in it when the test ends.
#[derive(Debug)]
struct TestSchema {
    url: String,
    name: String,
}

impl TestSchema {
    fn new(url: &str) -> TestSchema {
        TestSchema {
            url: url.to_string(),
            name: unique_schema_name(),
        }
    }

    /// The server URL with this schema's name as application name, marking
    /// every connection the test opens so cleanup can end exactly those.
    fn url(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{separator}application_name={}", self.url, self.name)
    }

    fn options(&self) -> PostgresOptions {
        PostgresOptions {
            schema: Some(self.name.clone()),
            max_connections: 4,
            ..PostgresOptions::default()
        }
    }

    async fn open(&self) -> StoreResult<Store> {
        open_postgres(&self.url(), &self.options()).await
    }

    /// A plain connection whose unqualified names resolve in this schema.
    async fn client(&self) -> tokio_postgres::Client {
        let client = raw_client(&self.url()).await;
        client
            .batch_execute(&format!("SET search_path TO {}", self.name))
            .await
            .unwrap();
        client
    }
}

impl Drop for TestSchema {
    /// Ends the test's connections first: their tasks run on the test's
    /// runtime, which this blocks, so a transaction a failed operation left to
    /// roll back would otherwise hold its locks and the drop would wait forever.
    fn drop(&mut self) {
        let url = self.url.clone();
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let client = raw_client(&url).await;
                client
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                        &[&name],
                    )
                    .await?;
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await
            })
        });
        if let Ok(Err(error)) = cleanup.join() {
            eprintln!("could not drop test schema: {error}");
        }
    }
}

async fn fresh_postgres_store() -> Option<(Store, TestSchema)> {
    let url = server_url()?;
    let schema = TestSchema::new(&url);
    let store = schema.open().await.unwrap();
    Some((store, schema))
}

crate::store_conformance_tests!(fresh_postgres_store);

/// A loopback URL where nothing listens: a port the kernel just handed out and took back.
fn unreachable_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("postgres://whisk:secret-password@127.0.0.1:{port}/whisk")
}

#[tokio::test]
async fn unreachable_server_is_unavailable_and_names_it() {
    let url = unreachable_url();
    let error = open_postgres(&url, &PostgresOptions::default())
        .await
        .unwrap_err();
    let StoreError::Unavailable(message) = &error else {
        panic!("expected Unavailable, got {error:?}");
    };
    assert!(message.contains("127.0.0.1"), "{message}");
    assert!(
        !message.contains("secret-password"),
        "the password must not leak into errors: {message}"
    );
}

#[tokio::test]
async fn bad_url_schema_name_and_ca_file_are_invalid_input() {
    let bad_url = open_postgres("not a url at all ://", &PostgresOptions::default()).await;
    assert!(
        matches!(bad_url, Err(StoreError::InvalidInput(_))),
        "got {bad_url:?}"
    );

    for schema in [
        "Upper",
        "semi;colon",
        "9starts_with_digit",
        "",
        &"x".repeat(64),
    ] {
        let options = PostgresOptions {
            schema: Some(schema.to_string()),
            ..PostgresOptions::default()
        };
        let result = open_postgres(&unreachable_url(), &options).await;
        assert!(
            matches!(result, Err(StoreError::InvalidInput(_))),
            "schema '{schema}' must be refused before connecting, got {result:?}"
        );
    }

    let directory = tempfile::tempdir().unwrap();
    let empty_file = directory.path().join("empty.pem");
    std::fs::write(&empty_file, "").unwrap();
    for ca_file in [directory.path().join("missing.pem"), empty_file] {
        let options = PostgresOptions {
            tls: PostgresTls::Required { ca_file },
            ..PostgresOptions::default()
        };
        let result = open_postgres(&unreachable_url(), &options).await;
        assert!(
            matches!(result, Err(StoreError::InvalidInput(_))),
            "got {result:?}"
        );
    }
}

const CA_VARIABLE: &str = "WHISK_TEST_POSTGRES_CA";

/// The test server's URL and the CA that signed its certificate, or `None`
/// after telling why the test does nothing.
fn tls_server() -> Option<(String, std::path::PathBuf)> {
    let url = server_url()?;
    match std::env::var(CA_VARIABLE) {
        Ok(ca) if !ca.is_empty() => Some((url, ca.into())),
        _ => {
            eprintln!("{CA_VARIABLE} is not set: skipping this PostgreSQL TLS test");
            None
        }
    }
}

/// Whether the server sees this store's connection as encrypted.
async fn connection_is_encrypted(store: &Store, schema: &TestSchema) -> bool {
    // Any operation makes the pool hold an open connection to look at.
    store.entities.get("guest/x").await.unwrap();
    schema
        .client()
        .await
        .query_one(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = $1 AND a.pid <> pg_backend_pid()",
            &[&schema.name],
        )
        .await
        .unwrap()
        .get(0)
}

/// With TLS required the store verifies the server against the given CA and
/// encrypts, even when the URL itself asks for no TLS.
#[tokio::test]
async fn required_tls_verifies_and_encrypts() {
    let Some((url, ca_file)) = tls_server() else {
        return;
    };
    let schema = TestSchema::new(&url);
    let options = PostgresOptions {
        tls: PostgresTls::Required { ca_file },
        ..schema.options()
    };
    // `url()` always carries a query (the application name).
    let schema_url = format!("{}&sslmode=disable", schema.url());
    let store = open_postgres(&schema_url, &options).await.unwrap();
    store
        .entities
        .put(test_entity(EntityType::Action, "guest", "secret", 1), None)
        .await
        .unwrap();
    assert!(connection_is_encrypted(&store, &schema).await);

    let plain = TestSchema::new(&url);
    let plain_store = plain.open().await.unwrap();
    assert!(
        !connection_is_encrypted(&plain_store, &plain).await,
        "the check above must be able to fail"
    );
}

/// A server whose certificate the configured CA did not sign is refused, as unavailable.
#[tokio::test]
async fn tls_with_an_unrelated_ca_is_refused() {
    let Some((url, _)) = tls_server() else { return };
    let directory = tempfile::tempdir().unwrap();
    let ca_file = directory.path().join("unrelated-ca.pem");
    std::fs::write(&ca_file, TEST_CA_PEM).unwrap();
    let schema = TestSchema::new(&url);
    let options = PostgresOptions {
        tls: PostgresTls::Required { ca_file },
        connect_timeout: Duration::from_secs(30),
        ..schema.options()
    };
    let result = open_postgres(&schema.url(), &options).await;
    let Err(StoreError::Unavailable(message)) = &result else {
        panic!("expected Unavailable, got {result:?}");
    };
    assert!(message.contains("127.0.0.1"), "{message}");
}

/// A self-signed CA certificate that signed nothing the test server holds.
const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBhzCCAS2gAwIBAgIUISnfxmg9ppiI2nsej2W9EU8IKr0wCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNd2hpc2stdGVzdC1jYTAgFw0yNjEyMDYwOTMyNDBaGA8yMTI2
MTExMjA5MzI0MFowGDEWMBQGA1UEAwwNd2hpc2stdGVzdC1jYTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABMdYJhqfDk5fmoIMQE5kAHdr4sFh//bIwUpME0iWA7/P
zMWluqTBWqLFbL/6uwbx4vpGOmIobvHZ9gHd25f+dzGjUzBRMB0GA1UdDgQWBBS9
53wwYxOMeFMD+wK67ncORZPkmDAfBgNVHSMEGDAWgBS953wwYxOMeFMD+wK67ncO
RZPkmDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQCvDf+c89Q9
goDscBt0YnvPjazKNcXs8V80QIEqjtuGrQIgc5X6uBs9xUhAWzp9ITDvJpw8F1wp
OKu0MYWoZUrXbZI=
-----END CERTIFICATE-----
";

#[tokio::test]
async fn schemas_keep_stores_apart() {
    let Some(url) = server_url() else { return };
    let first_schema = TestSchema::new(&url);
    let second_schema = TestSchema::new(&url);
    let first = first_schema.open().await.unwrap();
    let second = second_schema.open().await.unwrap();
    first
        .entities
        .put(
            test_entity(EntityType::Action, "guest", "only-here", 1),
            None,
        )
        .await
        .unwrap();
    assert!(
        first
            .entities
            .get("guest/only-here")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        second
            .entities
            .get("guest/only-here")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn migrations_run_once_even_when_processes_start_together() {
    let Some(url) = server_url() else { return };
    let schema = TestSchema::new(&url);
    let openings: Vec<_> = (0..4)
        .map(|_| {
            let url = schema.url();
            let options = schema.options();
            tokio::spawn(async move { open_postgres(&url, &options).await.map(|_| ()) })
        })
        .collect();
    for opening in openings {
        opening.await.unwrap().unwrap();
    }
    // Migration 1 creates tables without IF NOT EXISTS: a second run would have failed.
    schema.open().await.unwrap();
    let versions: Vec<i64> = schema
        .client()
        .await
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let expected: Vec<i64> = (1..=migrations::latest_version()).collect();
    assert_eq!(versions, expected);
}

#[tokio::test]
async fn refuses_schema_from_newer_build() {
    let Some(url) = server_url() else { return };
    let schema = TestSchema::new(&url);
    schema.open().await.unwrap();
    let newer = migrations::latest_version() + 1;
    schema
        .client()
        .await
        .execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&newer],
        )
        .await
        .unwrap();
    let error = schema.open().await.unwrap_err();
    match &error {
        StoreError::SchemaTooNew { found, supported } => {
            assert_eq!(*found, newer);
            assert_eq!(*supported, migrations::latest_version());
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn keys_are_not_stored_in_plain_text() {
    let Some((store, schema)) = fresh_postgres_store().await else {
        return;
    };
    let key = test_key("uuid-visible-in-table", 'Q');
    store
        .subjects
        .create_subject("secret-keeper", "secrets", &key)
        .await
        .unwrap();
    let rows = schema
        .client()
        .await
        .query("SELECT row_to_json(n)::text FROM namespaces n", &[])
        .await
        .unwrap();
    let stored: String = rows.iter().map(|row| row.get::<_, String>(0)).collect();
    assert!(stored.contains(&key.uuid), "{stored}");
    assert!(!stored.contains(&key.key), "{stored}");
    let key_hash: Vec<u8> = schema
        .client()
        .await
        .query_one("SELECT key_hash FROM namespaces", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        !key_hash
            .windows(key.key.len())
            .any(|w| w == key.key.as_bytes())
    );
}

#[tokio::test]
async fn damaged_rows_are_reported_corrupt() {
    let Some((store, schema)) = fresh_postgres_store().await else {
        return;
    };
    store
        .entities
        .put(test_entity(EntityType::Action, "guest", "broken", 1), None)
        .await
        .unwrap();
    store
        .entities
        .put(test_entity(EntityType::Rule, "guest", "odd", 1), None)
        .await
        .unwrap();
    store
        .activations
        .put(test_activation("guest", "broken-id", "broken", None, 1))
        .await
        .unwrap();
    store
        .activations
        .put_pending(test_activation("guest", "pending-id", "broken", None, 1))
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
    schema
        .client()
        .await
        .batch_execute(
            "UPDATE entities SET document = '{not json' WHERE name = 'broken';
             UPDATE entities SET entity_type = 'gizmo' WHERE name = 'odd';
             UPDATE activations SET document = '[1,';
             UPDATE pending_activations SET document = '{';
             UPDATE namespace_limits SET document = '{\"invocationsPerMinute\": \"many\"}';
             UPDATE namespaces SET key_hash = '\\x00';",
        )
        .await
        .unwrap();

    let get = store.entities.get("guest/broken").await;
    assert!(matches!(get, Err(StoreError::Corrupt(_))), "got {get:?}");
    let odd = store.entities.get("guest/odd").await;
    assert!(matches!(odd, Err(StoreError::Corrupt(_))), "got {odd:?}");
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
    let pending = store.activations.pending().await;
    assert!(
        matches!(pending, Err(StoreError::Corrupt(_))),
        "got {pending:?}"
    );
    let limits = store.subjects.get_limits("guest").await;
    assert!(
        matches!(limits, Err(StoreError::Corrupt(_))),
        "got {limits:?}"
    );
    let identity = store.subjects.identity_for_namespace("guest").await;
    assert!(
        matches!(identity, Err(StoreError::Corrupt(_))),
        "got {identity:?}"
    );
    let authenticated = store
        .subjects
        .authenticate(&test_key("uuid-broken", 'b'))
        .await;
    assert!(
        matches!(authenticated, Err(StoreError::Corrupt(_))),
        "got {authenticated:?}"
    );
}

#[tokio::test]
async fn negative_stored_numbers_are_reported_corrupt() {
    let Some((store, schema)) = fresh_postgres_store().await else {
        return;
    };
    store
        .entities
        .put(test_entity(EntityType::Action, "guest", "minus", 1), None)
        .await
        .unwrap();
    schema
        .client()
        .await
        .batch_execute("UPDATE entities SET updated = -5")
        .await
        .unwrap();
    let get = store.entities.get("guest/minus").await;
    assert!(matches!(get, Err(StoreError::Corrupt(_))), "got {get:?}");
}

#[tokio::test]
async fn out_of_range_values_are_invalid_input() {
    let Some((store, _schema)) = fresh_postgres_store().await else {
        return;
    };
    let far_future = test_entity(EntityType::Action, "guest", "later", u64::MAX);
    let put = store.entities.put(far_future, None).await;
    assert!(
        matches!(put, Err(StoreError::InvalidInput(_))),
        "got {put:?}"
    );
    let activation = test_activation("guest", "late", "hello", None, u64::MAX);
    let put = store.activations.put(activation).await;
    assert!(
        matches!(put, Err(StoreError::InvalidInput(_))),
        "got {put:?}"
    );
    let slashed = test_activation("guest", "id1", "pkg/hello", None, 1);
    let put = store.activations.put(slashed).await;
    assert!(
        matches!(put, Err(StoreError::InvalidInput(_))),
        "got {put:?}"
    );
    let bare_path = test_activation("guest", "id2", "hello", Some("hello"), 1);
    let put = store.activations.put_pending(bare_path).await;
    assert!(
        matches!(put, Err(StoreError::InvalidInput(_))),
        "got {put:?}"
    );
}

/// A failing statement is a backend error; a connection the server dropped (as
/// in a restart) fails at most one operation, as `Unavailable`, and the pool
/// then connects afresh.
#[tokio::test]
async fn server_failures_are_classified_and_survived() {
    let Some(url) = server_url() else { return };
    let schema = TestSchema::new(&url);
    let store = schema.open().await.unwrap();
    assert!(store.entities.get("guest/x").await.unwrap().is_none());

    let terminated: i64 = raw_client(&url)
        .await
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&schema.name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(terminated >= 1);
    match store.entities.get("guest/x").await {
        Ok(None) | Err(StoreError::Unavailable(_)) => {}
        other => panic!("a dropped connection must fail as Unavailable if at all, got {other:?}"),
    }
    let started = Instant::now();
    while store.entities.get("guest/x").await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the pool never reconnected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    schema
        .client()
        .await
        .batch_execute("DROP TABLE activations CASCADE")
        .await
        .unwrap();
    let list = store.activations.list(&ActivationQuery::new("guest")).await;
    assert!(matches!(list, Err(StoreError::Backend(_))), "got {list:?}");
}

/// A statement the server cancels (here: stuck behind a lock past the
/// `statement_timeout` the URL sets) is worth retrying, so it is `Unavailable`;
/// options in the URL survive next to the schema's search path.
#[tokio::test]
async fn cancelled_statements_are_unavailable() {
    let Some(url) = server_url() else { return };
    let schema = TestSchema::new(&url);
    let timed_url = format!("{}&options=-c%20statement_timeout%3D300", schema.url());
    let store = open_postgres(&timed_url, &schema.options()).await.unwrap();
    assert!(store.entities.get("guest/x").await.unwrap().is_none());

    let mut blocker = schema.client().await;
    let lock = blocker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE entities IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let blocked = store.entities.get("guest/x").await;
    assert!(
        matches!(&blocked, Err(StoreError::Unavailable(message)) if message.contains("statement timeout")),
        "got {blocked:?}"
    );
    lock.rollback().await.unwrap();
    assert!(store.entities.get("guest/x").await.unwrap().is_none());
}

/// A record and a note of the same activation never coexist, even when the
/// note and the record are written at the same moment from different
/// connections (each write checks the other's table, so they must serialise).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_note_and_record_never_coexist() {
    let Some((store, schema)) = fresh_postgres_store().await else {
        return;
    };
    let mut races = Vec::new();
    for index in 0..60 {
        let id = format!("race{index}");
        let entry = test_activation("guest", &id, "hello", None, index);
        let note_store = std::sync::Arc::clone(&store.activations);
        let note = entry.clone();
        races.push(tokio::spawn(async move {
            // Losing the race to the record is the one allowed failure.
            match note_store.put_pending(note).await {
                Ok(()) | Err(StoreError::AlreadyExists(_)) => {}
                Err(other) => panic!("unexpected {other:?}"),
            }
        }));
        let record_store = std::sync::Arc::clone(&store.activations);
        races.push(tokio::spawn(async move {
            record_store.put(entry).await.unwrap();
        }));
    }
    for race in races {
        race.await.unwrap();
    }
    let both: i64 = schema
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM pending_activations p JOIN activations a USING (namespace, activation_id)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(both, 0, "a note outlived its record");
    assert_eq!(
        store
            .activations
            .count(&ActivationQuery::new("guest"))
            .await
            .unwrap(),
        60
    );
}

/// The plan PostgreSQL picks for a statement with these values, one line per node.
async fn plan(client: &tokio_postgres::Client, sql: &str, values: &[SqlValue]) -> String {
    let bound: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        values.iter().map(SqlValue::as_sql).collect();
    client
        .query(&format!("EXPLAIN {sql}"), &bound)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_no_table_scan(plan: &str, sql: &str) {
    assert!(
        plan.contains("Index"),
        "{sql} must use an index, plan:\n{plan}"
    );
    assert!(
        !plan.contains("Seq Scan"),
        "{sql} must not scan the table, plan:\n{plan}"
    );
}

/// Whether a plan sorts all its input before returning anything. An
/// incremental sort over input already ordered by `start` is fine: with a
/// limit it stops after a page's worth of rows.
fn has_full_sort(plan: &str) -> bool {
    plan.lines().any(|line| {
        line.trim_start()
            .trim_start_matches("->")
            .trim_start()
            .starts_with("Sort  (")
    })
}

const ROWS: i64 = 100_000;
const BASE_START: i64 = 1_700_000_000_000;

/// 100k activations: a busy namespace with a tenth of them, the rest spread
/// over 900 quiet ones; 50 action names, a third run from a package.
async fn fill_activations(client: &tokio_postgres::Client) {
    client
        .batch_execute(&format!(
            "INSERT INTO activations (namespace, activation_id, name, path_name, start, document) \
             SELECT CASE WHEN i % 10 = 7 THEN 'busy' ELSE 'ns' || (i % 900) END, \
                    lpad(to_hex(i), 32, '0'), 'action' || (i % 50), \
                    CASE WHEN i % 3 = 0 THEN 'pkg/action' || (i % 50) END, \
                    {BASE_START} + i * 1000, \
                    '{{\"activationId\":\"' || lpad(to_hex(i), 32, '0') || '\",\"response\":{{\"result\":{{\"n\":' || i || '}}}}}}' \
             FROM generate_series(1, {ROWS}) AS i"
        ))
        .await
        .unwrap();
    client
        .batch_execute("VACUUM ANALYZE activations")
        .await
        .unwrap();
}

/// No list or count reads the whole table, and the API's default list (newest
/// page of a namespace) reads rows in list order instead of sorting them all,
/// whether the namespace is busy or quiet. Prints what lists cost at this size.
#[tokio::test]
async fn activation_lists_use_an_index_at_100k_rows() {
    let Some((store, schema)) = fresh_postgres_store().await else {
        return;
    };
    let client = schema.client().await;
    fill_activations(&client).await;

    let middle = u64::try_from(BASE_START + ROWS / 2 * 1000).unwrap();
    for namespace in ["busy", "ns8"] {
        for name in [None, Some("action7"), Some("pkg/action9")] {
            for (since, upto) in [(None, None), (Some(middle - 3_600_000), Some(middle))] {
                for (skip, limit) in [(0, 30), (200, 200)] {
                    let query = ActivationQuery {
                        name: name.map(str::to_string),
                        since,
                        upto,
                        skip,
                        limit: Some(limit),
                        ..ActivationQuery::new(namespace)
                    };
                    let (list, list_values) = activation::list_statement(&query);
                    let list_plan = plan(&client, &list, &list_values).await;
                    assert_no_table_scan(&list_plan, &list);
                    if name.is_none() && since.is_none() && skip == 0 {
                        assert!(
                            !has_full_sort(&list_plan),
                            "{list} must read in list order, plan:\n{list_plan}"
                        );
                    }
                    let (count, count_values) = activation::count_statement(&query);
                    let count_plan = plan(&client, &count, &count_values).await;
                    assert_no_table_scan(&count_plan, &count);
                }
            }
        }
    }

    let latest = ActivationQuery {
        limit: Some(30),
        ..ActivationQuery::new("busy")
    };
    let quiet = ActivationQuery {
        limit: Some(30),
        ..ActivationQuery::new("ns8")
    };
    let by_name = ActivationQuery {
        name: Some("action7".to_string()),
        ..latest.clone()
    };
    let deep_page = ActivationQuery {
        skip: 5_000,
        ..latest.clone()
    };
    for (label, query) in [
        ("busy namespace, newest 30", &latest),
        ("quiet namespace, newest 30", &quiet),
        ("busy namespace, by name", &by_name),
        ("busy namespace, skip 5000", &deep_page),
    ] {
        let first = store.activations.list(query).await.unwrap();
        assert_eq!(first.len(), 30, "{label}");
        let mut timings = Vec::new();
        for _ in 0..50 {
            let started = Instant::now();
            store.activations.list(query).await.unwrap();
            timings.push(started.elapsed());
        }
        timings.sort();
        eprintln!(
            "list ({label}) at {ROWS} rows: median {:?}, p90 {:?}, max {:?}",
            timings[timings.len() / 2],
            timings[timings.len() * 9 / 10],
            timings[timings.len() - 1]
        );
    }
    let newest = store.activations.list(&latest).await.unwrap();
    assert_eq!(
        newest[0]["activationId"],
        serde_json::json!(format!("{:032x}", 99_997)),
        "the busy namespace's newest activation comes first"
    );
    assert_eq!(
        store
            .activations
            .count(&ActivationQuery::new("busy"))
            .await
            .unwrap(),
        u64::try_from(ROWS / 10).unwrap()
    );
}

/// Entity lists are small per namespace, so the planner rightly scans small
/// tables; what matters is that an index exists that yields rows in list order,
/// which shows once sequential scans are ruled out.
#[tokio::test]
async fn entity_lists_have_an_index_in_sort_order() {
    let Some((_store, schema)) = fresh_postgres_store().await else {
        return;
    };
    let client = schema.client().await;
    client
        .batch_execute("SET enable_seqscan = off")
        .await
        .unwrap();
    for scope in [
        EntityScope::Namespace("guest".to_string()),
        EntityScope::Exact("guest/pkg".to_string()),
    ] {
        for public_only in [false, true] {
            let query = EntityQuery {
                public_only,
                limit: Some(30),
                ..EntityQuery::new(EntityType::Package, scope.clone())
            };
            let values = vec![
                SqlValue::Text("package".to_string()),
                SqlValue::Text("guest".to_string()),
                SqlValue::OptionalInteger(Some(30)),
                SqlValue::Integer(0),
            ];
            let list = entity::list_sql(&query);
            let list_plan = plan(&client, &list, &values).await;
            assert_no_table_scan(&list_plan, &list);
            assert!(
                !has_full_sort(&list_plan),
                "{list} must not sort:\n{list_plan}"
            );
            let count = entity::count_sql(&query);
            let count_plan = plan(&client, &count, &values[..2]).await;
            assert!(!count_plan.contains("Seq Scan"), "{count}:\n{count_plan}");
        }
    }
}

#[tokio::test]
async fn other_crates_migrate_their_own_track_beside_the_store() {
    let Some(url) = server_url() else { return };
    let schema = TestSchema::new(&url);
    let database = super::PostgresDatabase::open(&schema.url(), &schema.options())
        .await
        .unwrap();
    let track: &[&str] = &["CREATE TABLE extra_things (id bigint PRIMARY KEY)"];
    // Twice, and from two handles at once: one migration, no error.
    let (first, second) = tokio::join!(
        database.migrate_track("extra", track),
        database.migrate_track("extra", track)
    );
    first.unwrap();
    second.unwrap();
    database.migrate_track("extra", track).await.unwrap();
    let client = schema.client().await;
    let versions: Vec<i64> = client
        .query("SELECT version FROM extra_migrations", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, [1]);
    // The store's own track is unchanged.
    let store_versions: i64 = client
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(store_versions, migrations::latest_version());
    // A track name that is not a plain identifier never reaches the SQL.
    assert!(matches!(
        database
            .migrate_track("x; DROP TABLE entities", track)
            .await,
        Err(StoreError::InvalidInput(_))
    ));
    // A track that is newer than the code is refused like the store's.
    assert!(matches!(
        database.migrate_track("extra", &[]).await,
        Err(StoreError::SchemaTooNew {
            found: 1,
            supported: 0
        })
    ));
}

#[tokio::test]
async fn a_dedicated_client_keeps_its_session_until_dropped() {
    let Some(url) = server_url() else { return };
    let schema = TestSchema::new(&url);
    let database = super::PostgresDatabase::open(&schema.url(), &schema.options())
        .await
        .unwrap();
    let try_lock = "SELECT pg_try_advisory_lock(hashtext(current_schema()))";
    let holder = database.dedicated_client().await.unwrap();
    assert!(
        holder
            .query_one(try_lock, &[])
            .await
            .unwrap()
            .get::<_, bool>(0)
    );
    // Every pooled connection is another session: none gets the lock.
    for _ in 0..4 {
        let pooled = database.client().await.unwrap();
        assert!(
            !pooled
                .query_one(try_lock, &[])
                .await
                .unwrap()
                .get::<_, bool>(0)
        );
    }
    // Dropped, its session ends and the lock with it.
    drop(holder);
    let deadline = Instant::now() + Duration::from_secs(30);
    let other = database.dedicated_client().await.unwrap();
    while !other
        .query_one(try_lock, &[])
        .await
        .unwrap()
        .get::<_, bool>(0)
    {
        assert!(Instant::now() < deadline, "the lock outlived its session");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
