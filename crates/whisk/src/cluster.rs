//! What `whisk controller` and `whisk invoker` share: reaching the cluster's store and bus,
//! and a controller's own view of the pending notes.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use tokio::time::Instant;
use whisk_bus::{Bus, NatsBus, NatsConfig};
use whisk_store::{
    ActivationEntry, ActivationQuery, ActivationStore, PostgresDatabase, PostgresOptions,
    PostgresTls, Store, StoreResult,
};

use crate::config::{ClusterRole, ClusterSettings};

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

/// How long a controller retries publishing an activation while the bus is away before it
/// answers `503`: a caller is waiting on the HTTP request, and a bus away for longer than a
/// reconnection takes is an outage the caller should hear of. Invokers keep the adapter's
/// default (and retry their completions beyond it), as nobody waits on them.
pub const CONTROLLER_PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long after its bus connection is back a controller waits before it counts invokers'
/// silence again: each invoker reconnects on its own schedule (the NATS client waits up to 4 s
/// between attempts) and beats once a second, so until then silence says nothing of them.
pub const QUIET_AFTER_RECONNECT: Duration = Duration::from_secs(10);

/// Connects to the cluster's NATS bus under the cluster's name, with `role`'s patience.
pub async fn connect_bus(
    settings: &ClusterSettings,
    role: ClusterRole,
) -> anyhow::Result<Arc<dyn Bus>> {
    let mut config = NatsConfig::new(settings.bus.clone(), settings.name.clone());
    if role == ClusterRole::Controller {
        config.publish_timeout = CONTROLLER_PUBLISH_TIMEOUT;
    }
    let bus = NatsBus::connect(config)
        .await
        .context("cannot connect to the cluster bus")?;
    Ok(Arc::new(bus))
}

/// Whether a controller may count an invoker's silence against it now. While the controller's
/// own bus connection is down it hears no invoker, so a bus outage must not pass for every
/// invoker dying (which would close their activations with `whisk internal error` records while
/// they still run and store their true ones); after the connection is back, silence counts only
/// once [`QUIET_AFTER_RECONNECT`] (or the `quiet` given) has passed.
#[derive(Debug)]
pub struct Hearing {
    quiet: Duration,
    /// When the connection was last seen coming back; `None` while it is down.
    since: Option<Instant>,
}

impl Hearing {
    /// Starts hearing at `now` (a controller starts connected).
    pub fn new(quiet: Duration, now: Instant) -> Hearing {
        Hearing {
            quiet,
            since: Some(now),
        }
    }

    /// Whether silence counts at `now`, given whether the bus is `connected` now.
    pub fn counts(&mut self, connected: bool, now: Instant) -> bool {
        if !connected {
            if self.since.take().is_some() {
                tracing::warn!("bus connection lost; invokers' silence is not counted");
            }
            return false;
        }
        let since = *self.since.get_or_insert_with(|| {
            tracing::info!(
                quiet_ms = u64::try_from(self.quiet.as_millis()).unwrap_or(u64::MAX),
                "bus connection back; invokers' silence counts again after a quiet period"
            );
            now
        });
        now.saturating_duration_since(since) >= self.quiet
    }
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

    #[test]
    fn silence_counts_only_while_connected_and_after_the_quiet_period() {
        let start = Instant::now();
        let quiet = Duration::from_secs(10);
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut hearing = Hearing::new(quiet, start);
        assert!(!hearing.counts(true, at(9)), "the quiet period after start");
        assert!(hearing.counts(true, at(10)));
        assert!(hearing.counts(true, at(100)));
        // A bus outage: nothing counts while it lasts, however long.
        assert!(!hearing.counts(false, at(101)));
        assert!(!hearing.counts(false, at(500)));
        // Back: the quiet period starts at the first look after the reconnection.
        assert!(!hearing.counts(true, at(501)));
        assert!(!hearing.counts(true, at(510)));
        assert!(hearing.counts(true, at(511)));
        // A blip between two looks that is seen restarts the quiet period too.
        assert!(!hearing.counts(false, at(512)));
        assert!(!hearing.counts(true, at(513)));
        assert!(hearing.counts(true, at(523)));
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
