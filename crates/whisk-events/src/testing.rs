//! A PostgreSQL schema of its own for one test, on the server `WHISK_TEST_POSTGRES_URL`
//! names (`.ci/postgres start DIR` prints it); dropped with everything in it when the test
//! ends, even by a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};

use whisk_store::{PostgresDatabase, PostgresOptions};

/// One test's schema and a pool whose connections resolve names in it.
pub(crate) struct TestDatabase {
    pub database: PostgresDatabase,
    url: String,
    /// Also the `application_name` of every connection the test's pool opens.
    pub schema: String,
}

/// A fresh schema on the test server, or `None` after saying why the test does nothing.
pub(crate) async fn database() -> Option<TestDatabase> {
    let Some(url) = std::env::var("WHISK_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
    else {
        eprintln!(
            "SKIPPED: WHISK_TEST_POSTGRES_URL is not set, so this PostgreSQL test does nothing (`.ci/postgres start DIR` starts a server and prints it)"
        );
        return None;
    };
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let schema = format!(
        "feeds_test_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    // Every connection of the test carries the schema's name, so cleanup can end exactly those.
    let separator = if url.contains('?') { '&' } else { '?' };
    let marked = format!("{url}{separator}application_name={schema}");
    let options = PostgresOptions {
        schema: Some(schema.clone()),
        ..PostgresOptions::default()
    };
    let database = PostgresDatabase::open(&marked, &options)
        .await
        .expect("the test server answers");
    Some(TestDatabase {
        database,
        url,
        schema,
    })
}

impl Drop for TestDatabase {
    /// On a thread of its own (the test's runtime may be the one blocked here), ends the
    /// test's connections, then drops the schema.
    fn drop(&mut self) {
        let url = self.url.clone();
        let schema = self.schema.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let (client, connection) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                client
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE application_name = $1 OR application_name = $2",
                        &[&schema, &format!("whisk-alarm-scheduler:{schema}")],
                    )
                    .await?;
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await
            })
        });
        if let Ok(Err(error)) = cleanup.join() {
            eprintln!("could not drop test schema {}: {error}", self.schema);
        }
    }
}
