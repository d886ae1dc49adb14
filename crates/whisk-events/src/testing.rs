//! A PostgreSQL schema of its own for one test, on the server `WHISK_TEST_POSTGRES_URL`
//! names (`.ci/postgres start DIR` prints it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};

use whisk_store::{PostgresDatabase, PostgresOptions};

/// One test's schema; [`TestDatabase::drop_schema`] removes it with everything in it.
pub(crate) struct TestDatabase {
    pub database: PostgresDatabase,
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
    let options = PostgresOptions {
        schema: Some(schema.clone()),
        ..PostgresOptions::default()
    };
    let database = PostgresDatabase::open(&url, &options)
        .await
        .expect("the test server answers");
    Some(TestDatabase { database, schema })
}

impl TestDatabase {
    pub async fn drop_schema(self) {
        let client = self.database.client().await.unwrap();
        client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await
            .unwrap();
    }
}
