//! What `whisk controller` and `whisk invoker` share: reaching the cluster's store and bus,
//! and a controller's own view of the pending notes.

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use whisk_bus::{Bus, NatsBus, NatsConfig};
use whisk_store::{
    ActivationEntry, ActivationQuery, ActivationStore, PostgresDatabase, PostgresOptions,
    PostgresTls, Store, StoreResult,
};

use crate::config::ClusterSettings;

/// Opens the shared PostgreSQL store (migrating its schema if this build is newer).
pub async fn open_store(settings: &ClusterSettings) -> anyhow::Result<Store> {
    Ok(open_database(settings).await?.store())
}

/// The shared PostgreSQL database: the store's pool, also used by the feed provider's
/// registrations and the scheduler election on a controller.
pub async fn open_database(settings: &ClusterSettings) -> anyhow::Result<PostgresDatabase> {
    let options = PostgresOptions {
        tls: match &settings.store_ca {
            Some(ca_file) => PostgresTls::Required {
                ca_file: ca_file.clone(),
            },
            None => PostgresTls::Disabled,
        },
        schema: settings.store_schema.clone(),
        ..PostgresOptions::default()
    };
    PostgresDatabase::open(&settings.store, &options)
        .await
        .context("cannot open the cluster store")
}

/// Connects to the cluster's NATS bus under the cluster's name.
pub async fn connect_bus(settings: &ClusterSettings) -> anyhow::Result<Arc<dyn Bus>> {
    let bus = NatsBus::connect(NatsConfig::new(settings.bus.clone(), settings.name.clone()))
        .await
        .context("cannot connect to the cluster bus")?;
    Ok(Arc::new(bus))
}

/// The activation store as one controller of a cluster sees it: its pending notes are tagged
/// with its name, and `pending` lists only those. Closing "every note left open" at start, or
/// the notes of a dead invoker, then touches only this controller's activations, never those
/// that other controllers are still waiting for.
#[derive(Debug)]
pub struct OwnedNotes {
    inner: Arc<dyn ActivationStore>,
    owner: String,
}

impl OwnedNotes {
    /// `store` with its activations seen as `owner`'s.
    pub fn wrap(store: Store, owner: String) -> Store {
        Store {
            activations: Arc::new(Self {
                inner: store.activations,
                owner,
            }),
            ..store
        }
    }
}

#[async_trait]
impl ActivationStore for OwnedNotes {
    async fn put(&self, entry: ActivationEntry) -> StoreResult<()> {
        self.inner.put(entry).await
    }

    async fn get(
        &self,
        namespace: &str,
        activation_id: &str,
    ) -> StoreResult<Option<serde_json::Value>> {
        self.inner.get(namespace, activation_id).await
    }

    async fn list(&self, query: &ActivationQuery) -> StoreResult<Vec<serde_json::Value>> {
        self.inner.list(query).await
    }

    async fn count(&self, query: &ActivationQuery) -> StoreResult<u64> {
        self.inner.count(query).await
    }

    async fn delete_older_than(&self, epoch_ms: u64) -> StoreResult<u64> {
        self.inner.delete_older_than(epoch_ms).await
    }

    async fn put_pending(&self, entry: ActivationEntry) -> StoreResult<()> {
        self.inner.put_pending_owned(entry, &self.owner).await
    }

    async fn put_pending_owned(&self, entry: ActivationEntry, owner: &str) -> StoreResult<()> {
        self.inner.put_pending_owned(entry, owner).await
    }

    async fn remove_pending(&self, namespace: &str, activation_id: &str) -> StoreResult<()> {
        self.inner.remove_pending(namespace, activation_id).await
    }

    async fn pending(&self) -> StoreResult<Vec<ActivationEntry>> {
        self.inner.pending_owned(&self.owner).await
    }

    async fn pending_owned(&self, owner: &str) -> StoreResult<Vec<ActivationEntry>> {
        self.inner.pending_owned(owner).await
    }

    /// Every controller's notes: the concurrency throttle counts the whole cluster's.
    async fn pending_count(&self, namespace: &str) -> StoreResult<u64> {
        self.inner.pending_count(namespace).await
    }

    async fn count_in_minute(&self, key: &str, minute: u64) -> StoreResult<u64> {
        self.inner.count_in_minute(key, minute).await
    }
}

/// The owner name a controller tags its pending notes with.
pub fn controller_owner(id: u32) -> String {
    format!("controller{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(id: &str) -> ActivationEntry {
        ActivationEntry {
            namespace: "guest".into(),
            activation_id: id.into(),
            name: "hello".into(),
            path_name: None,
            start: 1,
            document: serde_json::json!({"activationId": id}),
        }
    }

    #[tokio::test]
    async fn each_controller_sees_and_closes_only_its_own_notes() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let shared = whisk_store::open_sqlite(dir.path())?;
        let first = OwnedNotes::wrap(shared.clone(), controller_owner(0));
        let second = OwnedNotes::wrap(shared.clone(), controller_owner(1));
        first.activations.put_pending(note("a")).await?;
        second.activations.put_pending(note("b")).await?;
        let ids = |notes: Vec<ActivationEntry>| {
            notes
                .into_iter()
                .map(|note| note.activation_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(first.activations.pending().await?), ["a"]);
        assert_eq!(ids(second.activations.pending().await?), ["b"]);
        assert_eq!(ids(shared.activations.pending().await?), ["a", "b"]);
        // A record written through any view clears the note for all.
        second.activations.put(note("a")).await?;
        assert!(first.activations.pending().await?.is_empty());
        assert!(first.activations.get("guest", "a").await?.is_some());
        Ok(())
    }
}
