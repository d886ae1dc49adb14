//! A cluster's adapter: the registrations in the cluster's PostgreSQL schema, on the store's
//! own connection pool, so every controller serves the same feeds.
//!
//! The tables belong to this crate and migrate on a track of their own (`feed_migrations`),
//! next to the store's `schema_migrations`: neither numbering needs to know the other.

use async_trait::async_trait;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use whisk_store::PostgresDatabase;

use super::{
    AlarmRegistration, Expected, FeedBackend, FeedStoreResult, WebhookRegistration, from_sql,
    parse_spec, spec_text, to_sql, verifier,
};

/// The migration track (`feed_migrations`) of these tables.
const TRACK: &str = "feed";

/// Migration `n` is `MIGRATIONS[n - 1]`; append only.
const MIGRATIONS: &[&str] = &[MIGRATION_1_REGISTRATIONS];

/// Alarms with the index the scheduler's due scan and earliest-fire query use, and webhooks
/// (one per trigger, found by token or by trigger).
const MIGRATION_1_REGISTRATIONS: &str = r#"
CREATE TABLE feed_alarms (
    trigger     text COLLATE "C" NOT NULL PRIMARY KEY,
    namespace   text COLLATE "C" NOT NULL,
    name        text COLLATE "C" NOT NULL,
    owner_uuid  text NOT NULL,
    spec        text NOT NULL,
    next_fire   bigint,
    active      boolean NOT NULL,
    reason      text,
    changed     bigint NOT NULL,
    last_fire   bigint
);
CREATE INDEX feed_alarms_due ON feed_alarms (next_fire, trigger) WHERE active;
CREATE TABLE feed_webhooks (
    token       text COLLATE "C" NOT NULL PRIMARY KEY,
    namespace   text COLLATE "C" NOT NULL,
    name        text COLLATE "C" NOT NULL,
    owner_uuid  text NOT NULL,
    provider    text NOT NULL,
    secret      text,
    UNIQUE (namespace, name)
);
"#;

const ALARM_COLUMNS: &str =
    "trigger, namespace, name, owner_uuid, spec, next_fire, active, reason, changed, last_fire";

/// The registrations in the cluster's database; cheap to clone.
#[derive(Debug, Clone)]
pub struct PostgresFeeds {
    database: PostgresDatabase,
}

impl PostgresFeeds {
    /// The adapter on `database`'s pool, its tables migrated (several controllers starting at
    /// once migrate once: the track is migrated under an advisory lock).
    pub async fn open(database: PostgresDatabase) -> FeedStoreResult<Self> {
        database.migrate_track(TRACK, MIGRATIONS).await?;
        Ok(Self { database })
    }

    async fn webhook_where(
        &self,
        condition: &str,
        values: &[&(dyn ToSql + Sync)],
    ) -> FeedStoreResult<Option<WebhookRegistration>> {
        let client = self.database.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT token, namespace, name, owner_uuid, provider, secret
                     FROM feed_webhooks WHERE {condition}"
                ),
                values,
            )
            .await?;
        row.map(|row| {
            let provider: String = row.try_get(4)?;
            Ok(WebhookRegistration {
                token: row.try_get(0)?,
                namespace: row.try_get(1)?,
                name: row.try_get(2)?,
                owner_uuid: row.try_get(3)?,
                verifier: verifier(&provider, row.try_get(5)?)?,
            })
        })
        .transpose()
    }
}

fn alarm_row(row: &Row) -> FeedStoreResult<AlarmRegistration> {
    let spec: String = row.try_get(4)?;
    Ok(AlarmRegistration {
        trigger: row.try_get(0)?,
        namespace: row.try_get(1)?,
        name: row.try_get(2)?,
        owner_uuid: row.try_get(3)?,
        spec: parse_spec(&spec)?,
        next_fire: row.try_get::<_, Option<i64>>(5)?.map(from_sql),
        active: row.try_get(6)?,
        reason: row.try_get(7)?,
        changed: from_sql(row.try_get(8)?),
        last_fire: row.try_get::<_, Option<i64>>(9)?.map(from_sql),
    })
}

#[async_trait]
impl FeedBackend for PostgresFeeds {
    async fn put_alarm(&self, registration: &AlarmRegistration) -> FeedStoreResult<()> {
        let spec = spec_text(&registration.spec)?;
        let next_fire = registration.next_fire.map(to_sql);
        let last_fire = registration.last_fire.map(to_sql);
        let client = self.database.client().await?;
        client
            .execute(
                "INSERT INTO feed_alarms
                 (trigger, namespace, name, owner_uuid, spec, next_fire, active, reason, changed, last_fire)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (trigger) DO UPDATE SET
                     namespace = EXCLUDED.namespace, name = EXCLUDED.name,
                     owner_uuid = EXCLUDED.owner_uuid, spec = EXCLUDED.spec,
                     next_fire = EXCLUDED.next_fire, active = EXCLUDED.active,
                     reason = EXCLUDED.reason, changed = EXCLUDED.changed,
                     last_fire = EXCLUDED.last_fire",
                &[
                    &registration.trigger as &(dyn ToSql + Sync),
                    &registration.namespace,
                    &registration.name,
                    &registration.owner_uuid,
                    &spec,
                    &next_fire,
                    &registration.active,
                    &registration.reason,
                    &to_sql(registration.changed),
                    &last_fire,
                ],
            )
            .await?;
        Ok(())
    }

    async fn update_alarm_if(
        &self,
        registration: &AlarmRegistration,
        expected: Expected,
    ) -> FeedStoreResult<bool> {
        let next_fire = registration.next_fire.map(to_sql);
        let last_fire = registration.last_fire.map(to_sql);
        let expected_next_fire = expected.next_fire.map(to_sql);
        let client = self.database.client().await?;
        // One statement: the row lock PostgreSQL takes for the UPDATE makes a second,
        // concurrent claim re-check the condition against the first one's result and miss.
        let updated = client
            .execute(
                "UPDATE feed_alarms
                 SET next_fire = $2, active = $3, reason = $4, changed = $5, last_fire = $6
                 WHERE trigger = $1 AND next_fire IS NOT DISTINCT FROM $7 AND active = $8",
                &[
                    &registration.trigger as &(dyn ToSql + Sync),
                    &next_fire,
                    &registration.active,
                    &registration.reason,
                    &to_sql(registration.changed),
                    &last_fire,
                    &expected_next_fire,
                    &expected.active,
                ],
            )
            .await?;
        Ok(updated > 0)
    }

    async fn get_alarm(&self, trigger: &str) -> FeedStoreResult<Option<AlarmRegistration>> {
        let client = self.database.client().await?;
        client
            .query_opt(
                &format!("SELECT {ALARM_COLUMNS} FROM feed_alarms WHERE trigger = $1"),
                &[&trigger],
            )
            .await?
            .as_ref()
            .map(alarm_row)
            .transpose()
    }

    async fn delete_alarm(&self, trigger: &str) -> FeedStoreResult<bool> {
        let client = self.database.client().await?;
        Ok(client
            .execute("DELETE FROM feed_alarms WHERE trigger = $1", &[&trigger])
            .await?
            > 0)
    }

    async fn due_alarms(&self, now: u64) -> FeedStoreResult<Vec<AlarmRegistration>> {
        let client = self.database.client().await?;
        client
            .query(
                &format!(
                    "SELECT {ALARM_COLUMNS} FROM feed_alarms
                     WHERE active AND next_fire IS NOT NULL AND next_fire <= $1
                     ORDER BY next_fire, trigger"
                ),
                &[&to_sql(now)],
            )
            .await?
            .iter()
            .map(alarm_row)
            .collect()
    }

    async fn earliest_fire(&self) -> FeedStoreResult<Option<u64>> {
        let client = self.database.client().await?;
        let earliest: Option<i64> = client
            .query_one("SELECT min(next_fire) FROM feed_alarms WHERE active", &[])
            .await?
            .try_get(0)?;
        Ok(earliest.map(from_sql))
    }

    async fn put_webhook(&self, webhook: &WebhookRegistration) -> FeedStoreResult<()> {
        let mut client = self.database.client().await?;
        let transaction = client.transaction().await?;
        transaction
            .execute(
                "DELETE FROM feed_webhooks WHERE namespace = $1 AND name = $2",
                &[&webhook.namespace, &webhook.name],
            )
            .await?;
        transaction
            .execute(
                "INSERT INTO feed_webhooks (token, namespace, name, owner_uuid, provider, secret)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &webhook.token as &(dyn ToSql + Sync),
                    &webhook.namespace,
                    &webhook.name,
                    &webhook.owner_uuid,
                    &webhook.verifier.provider(),
                    &webhook.verifier.secret(),
                ],
            )
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn webhook_by_token(&self, token: &str) -> FeedStoreResult<Option<WebhookRegistration>> {
        self.webhook_where("token = $1", &[&token]).await
    }

    async fn webhook_for(
        &self,
        namespace: &str,
        name: &str,
    ) -> FeedStoreResult<Option<WebhookRegistration>> {
        self.webhook_where("namespace = $1 AND name = $2", &[&namespace, &name])
            .await
    }

    async fn delete_webhook(&self, namespace: &str, name: &str) -> FeedStoreResult<bool> {
        let client = self.database.client().await?;
        Ok(client
            .execute(
                "DELETE FROM feed_webhooks WHERE namespace = $1 AND name = $2",
                &[&namespace, &name],
            )
            .await?
            > 0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::FeedStore;
    use crate::store::FeedStoreError;
    use crate::store::conformance::{self, registration};
    use crate::testing;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance() {
        let Some(test) = testing::database().await else {
            return;
        };
        let feeds = PostgresFeeds::open(test.database.clone()).await.unwrap();
        conformance::run(&FeedStore::from_backend(Arc::new(feeds))).await;
        drop(test);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn controllers_starting_together_migrate_once_and_share_registrations() {
        let Some(test) = testing::database().await else {
            return;
        };
        let (first, second) = tokio::join!(
            PostgresFeeds::open(test.database.clone()),
            PostgresFeeds::open(test.database.clone())
        );
        let (first, second) = (first.unwrap(), second.unwrap());
        first
            .put_alarm(&registration("guest/a", Some(7)))
            .await
            .unwrap();
        assert_eq!(
            second
                .get_alarm("guest/a")
                .await
                .unwrap()
                .unwrap()
                .next_fire,
            Some(7)
        );
        let client = test.database.client().await.unwrap();
        let versions: Vec<i64> = client
            .query("SELECT version FROM feed_migrations ORDER BY version", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(versions, [1]);
        // The store's own track is untouched by ours.
        let store_versions: i64 = client
            .query_one("SELECT count(*) FROM schema_migrations", &[])
            .await
            .unwrap()
            .get(0);
        assert!(store_versions >= 3);
        drop(client);
        drop(test);
    }

    #[tokio::test]
    async fn a_newer_schema_and_damaged_rows_are_errors_not_panics() {
        let Some(test) = testing::database().await else {
            return;
        };
        let feeds = PostgresFeeds::open(test.database.clone()).await.unwrap();
        feeds
            .put_alarm(&registration("guest/a", Some(7)))
            .await
            .unwrap();
        feeds
            .put_webhook(&WebhookRegistration {
                token: "d".repeat(64),
                namespace: "guest".into(),
                name: "w".into(),
                owner_uuid: "u".into(),
                verifier: crate::signature::Verifier::None,
            })
            .await
            .unwrap();
        let client = test.database.client().await.unwrap();
        client
            .batch_execute(
                "UPDATE feed_alarms SET spec = 'nope';
                 UPDATE feed_webhooks SET provider = 'carrier-pigeon';
                 INSERT INTO feed_migrations (version) VALUES (99);",
            )
            .await
            .unwrap();
        assert!(matches!(
            feeds.get_alarm("guest/a").await,
            Err(FeedStoreError::Corrupt(_))
        ));
        assert!(matches!(
            feeds.due_alarms(10).await,
            Err(FeedStoreError::Corrupt(_))
        ));
        assert!(matches!(
            feeds.webhook_for("guest", "w").await,
            Err(FeedStoreError::Corrupt(_))
        ));
        match PostgresFeeds::open(test.database.clone()).await {
            Err(FeedStoreError::Postgres(whisk_store::StoreError::SchemaTooNew {
                found: 99,
                supported: 1,
            })) => {}
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
        // A table gone from under the adapter is a backend error.
        client
            .batch_execute("DROP TABLE feed_alarms")
            .await
            .unwrap();
        assert!(matches!(
            feeds.earliest_fire().await,
            Err(FeedStoreError::Postgres(_))
        ));
        drop(client);
        drop(test);
    }
}
