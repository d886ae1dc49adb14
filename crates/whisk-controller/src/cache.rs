//! The controller's in-memory cache of identities and entity documents.
//!
//! Without it every request authenticates its key with a joined query and every invocation
//! reads its action (and the packages on its path) from the store; in a cluster that makes
//! PostgreSQL the busiest process. [`cached`] wraps a [`Store`] so that those reads are served
//! from memory and every write made through the wrapper invalidates what it changed:
//!
//! - **Entities** (`EntityStore::get`, by document id) stay until a write through any
//!   controller invalidates them. The controller that writes drops its own entry before it
//!   answers and broadcasts the document id on [`INVALIDATION_TOPIC`]; every other controller
//!   drops its entry when the broadcast arrives (milliseconds). A broadcast lost to a bus outage
//!   is bounded by [`CacheConfig::entity_ttl`], the safety net.
//! - **Identities** (`authenticate` and `identity_for_namespace`) are changed by `whisk admin`,
//!   which writes the store directly and knows no bus, so their bound is
//!   [`CacheConfig::identity_ttl`] (a few seconds): a revoked key or changed limit takes effect
//!   on every controller within it. Subject writes made through a wrapped store (and the
//!   broadcasts of other controllers' such writes) drop every identity at once.
//! - **Negative answers** (unknown key, missing entity) are never cached, so a subject or
//!   entity created a moment ago is seen on the next request.
//!
//! A read that misses races with writes: it may fetch the old document just before a write
//! commits and insert it just after the write's invalidation. Each cache therefore counts
//! invalidations in an epoch; a miss notes the epoch before it reads the store, inserts, and
//! removes its own insert again if the epoch moved meanwhile. Either the invalidation's remove
//! runs after the insert, or the epoch bump is visible to the check after it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use moka::sync::Cache;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use whisk_bus::{Bus, BusError, News};
use whisk_model::{AuthKey, Identity, NamespaceLimits, Subject};
use whisk_store::{
    EntityDocument, EntityQuery, EntityStore, KeyHash, Revision, Store, StoreResult, StoredEntity,
    SubjectStore,
};

/// The broadcast topic controllers tell each other about writes on.
pub const INVALIDATION_TOPIC: &str = "controller-cache-invalidation";

/// How long `whisk admin` changes to subjects, keys and limits may take to reach a running
/// controller (admin writes the store directly and tells no controller).
pub const IDENTITY_TTL: Duration = Duration::from_secs(2);

/// Bounds of the caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long an entity document is served without a fresh read, should an invalidation be
    /// lost (bus outage). Invalidations normally act within milliseconds.
    pub entity_ttl: Duration,
    /// How long an identity (key → subject, namespace, limits) is served without a fresh read:
    /// the bound on how late a `whisk admin` change takes effect.
    pub identity_ttl: Duration,
    /// Approximate bytes of entity documents kept (larger documents weigh more).
    pub entity_capacity_bytes: u64,
    /// Identities kept.
    pub identity_capacity: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            entity_ttl: Duration::from_secs(60),
            identity_ttl: IDENTITY_TTL,
            entity_capacity_bytes: 64 * 1024 * 1024,
            identity_capacity: 10_000,
        }
    }
}

/// How often the caches answered from memory, for tests and measurements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub entity_hits: u64,
    pub entity_misses: u64,
    pub identity_hits: u64,
    pub identity_misses: u64,
    /// Invalidations received from other controllers.
    pub remote_invalidations: u64,
}

/// What a controller broadcasts after a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Invalidation {
    /// The sending cache, which has already invalidated its own entries.
    origin: u64,
    #[serde(flatten)]
    scope: Scope,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "scope")]
enum Scope {
    /// One entity document.
    Entity { doc_id: String },
    /// Every identity (a subject, namespace, key or limit changed).
    Identities,
}

/// A cached value and when it was read from the store.
#[derive(Debug, Clone)]
struct Entry<T> {
    value: T,
    loaded: Instant,
}

/// One map with its invalidation epoch.
struct Section<K, V> {
    map: Cache<K, Arc<Entry<V>>>,
    epoch: AtomicU64,
    ttl: Duration,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<K, V> Section<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(map: Cache<K, Arc<Entry<V>>>, ttl: Duration) -> Self {
        Section {
            map,
            epoch: AtomicU64::new(0),
            ttl,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cached value unless it is older than the TTL.
    fn get(&self, key: &K) -> Option<V> {
        let entry = self.map.get(key).filter(|e| e.loaded.elapsed() < self.ttl);
        match entry {
            Some(entry) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(entry.value.clone())
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// The epoch a miss notes before it reads the store.
    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Inserts a value read while the epoch was `seen`, unless an invalidation came since.
    fn insert(&self, key: K, value: V, seen: u64, loaded: Instant) {
        if self.epoch() != seen {
            return;
        }
        self.map
            .insert(key.clone(), Arc::new(Entry { value, loaded }));
        if self.epoch() != seen {
            self.map.invalidate(&key);
        }
    }

    /// The cached value of `key`, or what `load` reads from the store (kept unless an
    /// invalidation came while it read; a missing value is never kept).
    async fn read_through<F>(&self, key: K, load: F) -> StoreResult<Option<V>>
    where
        F: std::future::Future<Output = StoreResult<Option<V>>>,
    {
        if let Some(value) = self.get(&key) {
            return Ok(Some(value));
        }
        let seen = self.epoch();
        let loaded = Instant::now();
        let value = load.await?;
        if let Some(value) = &value {
            self.insert(key, value.clone(), seen, loaded);
        }
        Ok(value)
    }

    fn invalidate(&self, key: &K) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.map.invalidate(key);
    }

    fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.map.invalidate_all();
    }
}

/// The identity and entity caches of one controller, shared by its wrapped stores and its
/// invalidation listener.
pub struct Caches {
    entities: Section<String, StoredEntity>,
    /// Keyed by credential uuid and the hash of its key, so the cache holds no secret.
    keys: Section<(String, [u8; 32]), Identity>,
    namespaces: Section<String, Identity>,
    /// Where writes are announced; `None` for a single controller (standalone).
    bus: Option<Arc<dyn Bus>>,
    /// Tells this cache's own broadcasts apart from other controllers'.
    origin: u64,
    remote_invalidations: AtomicU64,
}

impl fmt::Debug for Caches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caches")
            .field("origin", &self.origin)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Caches {
    /// Caches that announce writes on `bus` (a cluster) or to nobody (`None`, one controller).
    pub fn new(config: CacheConfig, bus: Option<Arc<dyn Bus>>) -> Arc<Caches> {
        let entities = Cache::builder()
            .max_capacity(config.entity_capacity_bytes)
            .weigher(|doc_id: &String, entry: &Arc<Entry<StoredEntity>>| {
                let bytes = doc_id.len() + json_weight(&entry.value.document);
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .time_to_live(config.entity_ttl)
            .build();
        Arc::new(Caches {
            entities: Section::new(entities, config.entity_ttl),
            keys: Section::new(identity_map(&config), config.identity_ttl),
            namespaces: Section::new(identity_map(&config), config.identity_ttl),
            bus,
            origin: rand::random(),
            remote_invalidations: AtomicU64::new(0),
        })
    }

    /// Hit and miss counts so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entity_hits: self.entities.hits.load(Ordering::Relaxed),
            entity_misses: self.entities.misses.load(Ordering::Relaxed),
            identity_hits: self.keys.hits.load(Ordering::Relaxed)
                + self.namespaces.hits.load(Ordering::Relaxed),
            identity_misses: self.keys.misses.load(Ordering::Relaxed)
                + self.namespaces.misses.load(Ordering::Relaxed),
            remote_invalidations: self.remote_invalidations.load(Ordering::Relaxed),
        }
    }

    /// Drops one entity document.
    pub fn invalidate_entity(&self, doc_id: &str) {
        self.entities.invalidate(&doc_id.to_string());
    }

    /// Drops every identity.
    pub fn invalidate_identities(&self) {
        self.keys.invalidate_all();
        self.namespaces.invalidate_all();
    }

    /// Drops everything (the invalidation feed was interrupted, so anything may have changed).
    pub fn invalidate_all(&self) {
        self.entities.invalidate_all();
        self.invalidate_identities();
    }

    /// Subscribes to other controllers' invalidations and applies them until the bus closes.
    /// Subscribed before it returns, so a write announced after that is never missed.
    pub async fn listen(self: &Arc<Self>, bus: &Arc<dyn Bus>) -> Result<JoinHandle<()>, BusError> {
        let mut subscription = bus.subscribe(INVALIDATION_TOPIC).await?;
        let caches = Arc::clone(self);
        Ok(tokio::spawn(async move {
            while let Some(news) = subscription.next().await {
                match news {
                    News::Message(payload) => caches.apply(&payload),
                    News::Lagged(skipped) => {
                        tracing::warn!(skipped, "cache invalidations skipped; dropping the cache");
                        caches.invalidate_all();
                    }
                }
            }
            tracing::debug!("invalidation feed ended");
            caches.invalidate_all();
        }))
    }

    /// Applies one broadcast; an unreadable one drops everything rather than risk staleness.
    fn apply(&self, payload: &[u8]) {
        match serde_json::from_slice::<Invalidation>(payload) {
            Ok(invalidation) if invalidation.origin == self.origin => {}
            Ok(invalidation) => {
                self.remote_invalidations.fetch_add(1, Ordering::Relaxed);
                match invalidation.scope {
                    Scope::Entity { doc_id } => {
                        tracing::debug!(%doc_id, "entity invalidated by another controller");
                        self.invalidate_entity(&doc_id);
                    }
                    Scope::Identities => self.invalidate_identities(),
                }
            }
            Err(error) => {
                tracing::warn!(%error, "unreadable cache invalidation; dropping the cache");
                self.invalidate_all();
            }
        }
    }

    /// Tells the other controllers. A failure is logged, not returned: the write is committed
    /// and local entries are gone; elsewhere the TTL bounds the staleness.
    async fn announce(&self, scope: Scope) {
        let Some(bus) = &self.bus else {
            return;
        };
        let invalidation = Invalidation {
            origin: self.origin,
            scope,
        };
        let payload = match serde_json::to_vec(&invalidation) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::warn!(%error, "cannot encode a cache invalidation");
                return;
            }
        };
        if let Err(error) = bus
            .broadcast(INVALIDATION_TOPIC, Bytes::from(payload))
            .await
        {
            tracing::warn!(%error, ?invalidation, "cannot broadcast a cache invalidation");
        }
    }
}

fn identity_map<K>(config: &CacheConfig) -> Cache<K, Arc<Entry<Identity>>>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(config.identity_capacity)
        .time_to_live(config.identity_ttl)
        .build()
}

/// Roughly the bytes a JSON value holds: strings by length, everything else a small constant.
fn json_weight(value: &serde_json::Value) -> usize {
    const NODE: usize = 16;
    match value {
        serde_json::Value::String(text) => NODE + text.len(),
        serde_json::Value::Array(items) => NODE + items.iter().map(json_weight).sum::<usize>(),
        serde_json::Value::Object(fields) => {
            NODE + fields
                .iter()
                .map(|(name, value)| name.len() + json_weight(value))
                .sum::<usize>()
        }
        _ => NODE,
    }
}

/// `store` with its entity and subject reads served from `caches` and its writes invalidating
/// them; activations pass through untouched.
pub fn cached(store: Store, caches: &Arc<Caches>) -> Store {
    Store {
        entities: Arc::new(CachedEntityStore {
            inner: store.entities,
            caches: Arc::clone(caches),
        }),
        subjects: Arc::new(CachedSubjectStore {
            inner: store.subjects,
            caches: Arc::clone(caches),
        }),
        activations: store.activations,
    }
}

/// Entity reads from the cache, writes through to the store and then invalidating.
#[derive(Debug)]
pub struct CachedEntityStore {
    inner: Arc<dyn EntityStore>,
    caches: Arc<Caches>,
}

impl CachedEntityStore {
    async fn invalidate_after_write(&self, doc_id: &str, succeeded: bool) {
        self.caches.invalidate_entity(doc_id);
        // A failed write (a conflict, say) changed nothing, but it may mean this controller's
        // copy is the stale one; dropping it locally is enough.
        if succeeded {
            self.caches
                .announce(Scope::Entity {
                    doc_id: doc_id.to_string(),
                })
                .await;
        }
    }
}

#[async_trait]
impl EntityStore for CachedEntityStore {
    async fn get(&self, doc_id: &str) -> StoreResult<Option<StoredEntity>> {
        self.caches
            .entities
            .read_through(doc_id.to_string(), self.inner.get(doc_id))
            .await
    }

    async fn put(
        &self,
        entity: EntityDocument,
        expected: Option<Revision>,
    ) -> StoreResult<Revision> {
        let doc_id = entity.doc_id.clone();
        let result = self.inner.put(entity, expected).await;
        self.invalidate_after_write(&doc_id, result.is_ok()).await;
        result
    }

    async fn delete(&self, doc_id: &str, expected: Revision) -> StoreResult<()> {
        let result = self.inner.delete(doc_id, expected).await;
        self.invalidate_after_write(doc_id, result.is_ok()).await;
        result
    }

    async fn list(&self, query: &EntityQuery) -> StoreResult<Vec<StoredEntity>> {
        self.inner.list(query).await
    }

    async fn count(&self, query: &EntityQuery) -> StoreResult<u64> {
        self.inner.count(query).await
    }
}

/// Identity reads from the cache; every subject write drops all identities.
#[derive(Debug)]
pub struct CachedSubjectStore {
    inner: Arc<dyn SubjectStore>,
    caches: Arc<Caches>,
}

impl CachedSubjectStore {
    async fn invalidate_after_write(&self) {
        self.caches.invalidate_identities();
        self.caches.announce(Scope::Identities).await;
    }
}

#[async_trait]
impl SubjectStore for CachedSubjectStore {
    async fn create_subject(
        &self,
        subject_name: &str,
        namespace: &str,
        auth_key: &AuthKey,
    ) -> StoreResult<()> {
        let result = self
            .inner
            .create_subject(subject_name, namespace, auth_key)
            .await;
        self.invalidate_after_write().await;
        result
    }

    async fn add_namespace(
        &self,
        subject_name: &str,
        namespace: &str,
        auth_key: &AuthKey,
    ) -> StoreResult<()> {
        let result = self
            .inner
            .add_namespace(subject_name, namespace, auth_key)
            .await;
        self.invalidate_after_write().await;
        result
    }

    async fn get_subject(&self, subject_name: &str) -> StoreResult<Option<Subject>> {
        self.inner.get_subject(subject_name).await
    }

    async fn list_subjects(&self) -> StoreResult<Vec<Subject>> {
        self.inner.list_subjects().await
    }

    async fn delete_subject(&self, subject_name: &str) -> StoreResult<()> {
        let result = self.inner.delete_subject(subject_name).await;
        self.invalidate_after_write().await;
        result
    }

    async fn set_blocked(&self, subject_name: &str, blocked: bool) -> StoreResult<()> {
        let result = self.inner.set_blocked(subject_name, blocked).await;
        self.invalidate_after_write().await;
        result
    }

    async fn authenticate(&self, auth_key: &AuthKey) -> StoreResult<Option<Identity>> {
        let key = (
            auth_key.uuid.clone(),
            *KeyHash::of(&auth_key.key).as_bytes(),
        );
        self.caches
            .keys
            .read_through(key, self.inner.authenticate(auth_key))
            .await
    }

    async fn identity_for_namespace(&self, namespace: &str) -> StoreResult<Option<Identity>> {
        self.caches
            .namespaces
            .read_through(
                namespace.to_string(),
                self.inner.identity_for_namespace(namespace),
            )
            .await
    }

    async fn get_limits(&self, namespace: &str) -> StoreResult<Option<NamespaceLimits>> {
        self.inner.get_limits(namespace).await
    }

    async fn set_limits(&self, namespace: &str, limits: &NamespaceLimits) -> StoreResult<()> {
        let result = self.inner.set_limits(namespace, limits).await;
        self.invalidate_after_write().await;
        result
    }

    async fn delete_limits(&self, namespace: &str) -> StoreResult<()> {
        let result = self.inner.delete_limits(namespace).await;
        self.invalidate_after_write().await;
        result
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use serde_json::json;
    use tempfile::TempDir;
    use whisk_bus::InProcessBus;
    use whisk_model::EntityType;

    use super::*;

    const KEY: &str = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";

    fn open() -> (TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = whisk_store::open_sqlite(dir.path()).unwrap();
        (dir, store)
    }

    fn action(code: &str) -> EntityDocument {
        EntityDocument {
            doc_id: "guest/hello".to_string(),
            entity_type: EntityType::Action,
            namespace: "guest".to_string(),
            name: "hello".to_string(),
            updated: 1,
            publish: false,
            binding: false,
            document: json!({ "exec": { "code": code } }),
        }
    }

    fn code_of(entity: &StoredEntity) -> &str {
        entity.document["exec"]["code"].as_str().unwrap()
    }

    fn config() -> CacheConfig {
        CacheConfig {
            entity_ttl: Duration::from_secs(60),
            identity_ttl: Duration::from_secs(5),
            ..CacheConfig::default()
        }
    }

    /// Polls `condition` until it holds, failing after 30 s.
    async fn eventually<F: std::future::Future<Output = bool>>(mut condition: impl FnMut() -> F) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !condition().await {
            assert!(std::time::Instant::now() < deadline, "condition never held");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_second_read_is_a_hit_and_a_write_through_the_cache_is_seen_at_once() {
        let (_dir, raw) = open();
        let caches = Caches::new(config(), None);
        let store = cached(raw.clone(), &caches);
        let first = store.entities.put(action("v1"), None).await.unwrap();
        assert_eq!(
            code_of(&store.entities.get("guest/hello").await.unwrap().unwrap()),
            "v1"
        );
        assert_eq!(
            code_of(&store.entities.get("guest/hello").await.unwrap().unwrap()),
            "v1"
        );
        assert_eq!(caches.stats().entity_hits, 1);
        assert_eq!(caches.stats().entity_misses, 1);

        let second = store.entities.put(action("v2"), Some(first)).await.unwrap();
        let read = store.entities.get("guest/hello").await.unwrap().unwrap();
        assert_eq!((code_of(&read), read.revision), ("v2", second));

        store.entities.delete("guest/hello", second).await.unwrap();
        assert!(store.entities.get("guest/hello").await.unwrap().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_behind_the_cache_shows_once_the_ttl_passes() {
        let (_dir, raw) = open();
        let caches = Caches::new(config(), None);
        let store = cached(raw.clone(), &caches);
        let first = raw.entities.put(action("v1"), None).await.unwrap();
        store.entities.get("guest/hello").await.unwrap().unwrap();
        raw.entities.put(action("v2"), Some(first)).await.unwrap();

        tokio::time::advance(Duration::from_secs(59)).await;
        let read = store.entities.get("guest/hello").await.unwrap().unwrap();
        assert_eq!(code_of(&read), "v1", "served from the cache within the TTL");
        tokio::time::advance(Duration::from_secs(2)).await;
        let read = store.entities.get("guest/hello").await.unwrap().unwrap();
        assert_eq!(code_of(&read), "v2", "read afresh after the TTL");
    }

    #[tokio::test]
    async fn missing_entities_and_unknown_keys_are_not_cached() {
        let (_dir, raw) = open();
        let caches = Caches::new(config(), None);
        let store = cached(raw.clone(), &caches);
        let key = AuthKey::parse(KEY).unwrap();
        assert!(store.entities.get("guest/hello").await.unwrap().is_none());
        assert!(store.subjects.authenticate(&key).await.unwrap().is_none());
        assert!(
            store
                .subjects
                .identity_for_namespace("guest")
                .await
                .unwrap()
                .is_none()
        );

        raw.entities.put(action("v1"), None).await.unwrap();
        raw.subjects
            .create_subject("guest", "guest", &key)
            .await
            .unwrap();
        assert!(store.entities.get("guest/hello").await.unwrap().is_some());
        assert!(store.subjects.authenticate(&key).await.unwrap().is_some());
        assert!(
            store
                .subjects
                .identity_for_namespace("guest")
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_wrong_key_for_a_cached_uuid_is_refused() {
        let (_dir, raw) = open();
        let caches = Caches::new(config(), None);
        let store = cached(raw.clone(), &caches);
        let key = AuthKey::parse(KEY).unwrap();
        raw.subjects
            .create_subject("guest", "guest", &key)
            .await
            .unwrap();
        assert!(store.subjects.authenticate(&key).await.unwrap().is_some());
        let wrong = AuthKey::new(key.uuid.clone(), "w".repeat(64)).unwrap();
        assert!(store.subjects.authenticate(&wrong).await.unwrap().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn an_identity_changed_behind_the_cache_expires_with_the_identity_ttl() {
        let (_dir, raw) = open();
        let caches = Caches::new(config(), None);
        let store = cached(raw.clone(), &caches);
        let key = AuthKey::parse(KEY).unwrap();
        raw.subjects
            .create_subject("guest", "guest", &key)
            .await
            .unwrap();
        assert!(store.subjects.authenticate(&key).await.unwrap().is_some());
        raw.subjects.set_blocked("guest", true).await.unwrap();

        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(store.subjects.authenticate(&key).await.unwrap().is_some());
        assert_eq!(caches.stats().identity_hits, 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(store.subjects.authenticate(&key).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_subject_write_through_the_cache_drops_identities_at_once() {
        let (_dir, raw) = open();
        let caches = Caches::new(config(), None);
        let store = cached(raw.clone(), &caches);
        let key = AuthKey::parse(KEY).unwrap();
        store
            .subjects
            .create_subject("guest", "guest", &key)
            .await
            .unwrap();
        let identity = store.subjects.authenticate(&key).await.unwrap().unwrap();
        assert_eq!(identity.limits, NamespaceLimits::default());
        let limits = NamespaceLimits {
            invocations_per_minute: Some(7),
            ..NamespaceLimits::default()
        };
        store.subjects.set_limits("guest", &limits).await.unwrap();
        let identity = store.subjects.authenticate(&key).await.unwrap().unwrap();
        assert_eq!(identity.limits, limits);
        store.subjects.set_blocked("guest", true).await.unwrap();
        assert!(store.subjects.authenticate(&key).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_failed_write_drops_the_local_copy() {
        let (_dir, raw) = open();
        let caches = Caches::new(config(), None);
        let store = cached(raw.clone(), &caches);
        let first = raw.entities.put(action("v1"), None).await.unwrap();
        store.entities.get("guest/hello").await.unwrap().unwrap();
        let second = raw.entities.put(action("v2"), Some(first)).await.unwrap();
        // The caller read v1 here and updates with its stale revision: a conflict.
        assert!(store.entities.put(action("v3"), Some(first)).await.is_err());
        let read = store.entities.get("guest/hello").await.unwrap().unwrap();
        assert_eq!((code_of(&read), read.revision), ("v2", second));
    }

    #[test]
    fn a_value_read_before_an_invalidation_is_not_kept() {
        let caches = Caches::new(config(), None);
        let section = &caches.entities;
        let seen = section.epoch();
        caches.invalidate_entity("guest/hello");
        let entity = StoredEntity {
            doc_id: "guest/hello".to_string(),
            entity_type: EntityType::Action,
            namespace: "guest".to_string(),
            name: "hello".to_string(),
            updated: 1,
            publish: false,
            binding: false,
            revision: "1".parse().unwrap(),
            document: json!({}),
        };
        section.insert(
            "guest/hello".to_string(),
            entity.clone(),
            seen,
            Instant::now(),
        );
        assert!(section.get(&"guest/hello".to_string()).is_none());
        section.insert(
            "guest/hello".to_string(),
            entity,
            section.epoch(),
            Instant::now(),
        );
        assert!(section.get(&"guest/hello".to_string()).is_some());
    }

    /// Two controllers over one store and one bus.
    async fn pair() -> (
        TempDir,
        Store,
        Arc<Caches>,
        Store,
        Arc<Caches>,
        Arc<dyn Bus>,
    ) {
        let (dir, raw) = open();
        let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
        let zero = Caches::new(config(), Some(Arc::clone(&bus)));
        let one = Caches::new(config(), Some(Arc::clone(&bus)));
        zero.listen(&bus).await.unwrap();
        one.listen(&bus).await.unwrap();
        (
            dir,
            cached(raw.clone(), &zero),
            zero,
            cached(raw, &one),
            one,
            bus,
        )
    }

    #[tokio::test]
    async fn a_write_on_one_controller_invalidates_the_other() {
        let (_dir, zero, zero_caches, one, one_caches, _bus) = pair().await;
        let first = zero.entities.put(action("v1"), None).await.unwrap();
        assert_eq!(
            code_of(&one.entities.get("guest/hello").await.unwrap().unwrap()),
            "v1"
        );
        zero.entities.put(action("v2"), Some(first)).await.unwrap();
        eventually(|| {
            let one = one.clone();
            async move { code_of(&one.entities.get("guest/hello").await.unwrap().unwrap()) == "v2" }
        })
        .await;
        assert!(one_caches.stats().remote_invalidations >= 1);
        // Its own broadcasts are not counted as another controller's.
        assert_eq!(zero_caches.stats().remote_invalidations, 0);
    }

    #[tokio::test]
    async fn a_subject_write_on_one_controller_drops_the_others_identities() {
        let (_dir, zero, _zero_caches, one, _one_caches, _bus) = pair().await;
        let key = AuthKey::parse(KEY).unwrap();
        zero.subjects
            .create_subject("guest", "guest", &key)
            .await
            .unwrap();
        assert!(one.subjects.authenticate(&key).await.unwrap().is_some());
        zero.subjects.set_blocked("guest", true).await.unwrap();
        eventually(|| {
            let one = one.clone();
            let key = key.clone();
            async move { one.subjects.authenticate(&key).await.unwrap().is_none() }
        })
        .await;
    }

    #[tokio::test]
    async fn an_unreadable_invalidation_drops_everything() {
        let (dir, raw) = open();
        let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
        let caches = Caches::new(config(), Some(Arc::clone(&bus)));
        caches.listen(&bus).await.unwrap();
        let store = cached(raw.clone(), &caches);
        let first = raw.entities.put(action("v1"), None).await.unwrap();
        store.entities.get("guest/hello").await.unwrap().unwrap();
        raw.entities.put(action("v2"), Some(first)).await.unwrap();
        bus.broadcast(INVALIDATION_TOPIC, Bytes::from_static(b"not json"))
            .await
            .unwrap();
        eventually(|| {
            let store = store.clone();
            async move {
                code_of(&store.entities.get("guest/hello").await.unwrap().unwrap()) == "v2"
            }
        })
        .await;
        drop(dir);
    }

    #[tokio::test]
    async fn a_closed_bus_drops_everything() {
        let (_dir, raw) = open();
        let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
        let caches = Caches::new(config(), Some(Arc::clone(&bus)));
        let listener = caches.listen(&bus).await.unwrap();
        let store = cached(raw.clone(), &caches);
        raw.entities.put(action("v1"), None).await.unwrap();
        store.entities.get("guest/hello").await.unwrap().unwrap();
        bus.close().await;
        listener.await.unwrap();
        store.entities.get("guest/hello").await.unwrap().unwrap();
        assert_eq!(caches.stats().entity_misses, 2);
    }

    #[test]
    fn invalidations_round_trip_as_json() {
        let invalidation = Invalidation {
            origin: 7,
            scope: Scope::Entity {
                doc_id: "guest/hello".to_string(),
            },
        };
        let text = serde_json::to_string(&invalidation).unwrap();
        assert_eq!(
            text,
            r#"{"origin":7,"scope":"entity","doc_id":"guest/hello"}"#
        );
        assert_eq!(
            serde_json::from_str::<Invalidation>(&text).unwrap(),
            invalidation
        );
    }
}
