//! Storage of activation records.

use std::fmt;

use async_trait::async_trait;

use crate::error::StoreResult;

/// An activation record plus the columns its lists filter and sort on.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationEntry {
    /// The namespace that invoked (and may read) the activation.
    pub namespace: String,
    /// 32 lowercase hex characters; unique within the namespace.
    pub activation_id: String,
    /// The bare action or trigger name.
    pub name: String,
    /// `pkg/action` when the action ran from a package (or was invoked through
    /// a binding, then with the binding's name), so lists can filter on it.
    pub path_name: Option<String>,
    /// Epoch milliseconds the activation started; lists are ordered by it.
    pub start: u64,
    /// The record in the form the API returns it.
    pub document: serde_json::Value,
}

/// A list or count request over one namespace's activations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivationQuery {
    pub namespace: String,
    /// A bare name matches `name`; a `pkg/action` name matches `path_name`.
    pub name: Option<String>,
    /// Inclusive lower bound on `start` (epoch ms).
    pub since: Option<u64>,
    /// Inclusive upper bound on `start` (epoch ms).
    pub upto: Option<u64>,
    pub skip: u64,
    /// `None` lists everything after `skip`.
    pub limit: Option<u64>,
}

impl ActivationQuery {
    /// Every activation of a namespace, no filter, no paging.
    pub fn new(namespace: impl Into<String>) -> ActivationQuery {
        ActivationQuery {
            namespace: namespace.into(),
            ..ActivationQuery::default()
        }
    }
}

/// Activation records, readable only through the namespace that invoked them.
#[async_trait]
pub trait ActivationStore: Send + Sync + fmt::Debug {
    /// Stores a record; `AlreadyExists` if the namespace already has that id.
    async fn put(&self, entry: ActivationEntry) -> StoreResult<()>;

    /// The record stored under this namespace and id, if any.
    async fn get(
        &self,
        namespace: &str,
        activation_id: &str,
    ) -> StoreResult<Option<serde_json::Value>>;

    /// Newest first by `start` (ties by ascending id), filtered, after `skip`, at most `limit`.
    async fn list(&self, query: &ActivationQuery) -> StoreResult<Vec<serde_json::Value>>;

    /// How many records `list` would return without a limit (skip is honoured).
    async fn count(&self, query: &ActivationQuery) -> StoreResult<u64>;

    /// Deletes every record that started before `epoch_ms` (retention); returns how many.
    async fn delete_older_than(&self, epoch_ms: u64) -> StoreResult<u64>;

    /// Notes an activation as accepted but not finished, before it is handed to an invoker.
    ///
    /// `entry` is the record to complete should the activation be lost (its document is the
    /// activation as known when accepted). [`ActivationStore::put`] of the same namespace and id
    /// removes the note in the same transaction, so a record and its note never coexist and
    /// never both go missing. Adapters that cannot keep notes (this default) do nothing: after
    /// a crash their lost activations simply have no record.
    async fn put_pending(&self, entry: ActivationEntry) -> StoreResult<()> {
        let _ = entry;
        Ok(())
    }

    /// [`ActivationStore::put_pending`] with the note tagged as `owner`'s. In a cluster each
    /// controller tags its notes with its own name: at start it closes only the notes it left,
    /// never those of controllers still running. Untagged notes belong to `""`.
    async fn put_pending_owned(&self, entry: ActivationEntry, owner: &str) -> StoreResult<()> {
        let _ = owner;
        self.put_pending(entry).await
    }

    /// The open notes tagged `owner` (see [`ActivationStore::put_pending_owned`]), oldest first.
    async fn pending_owned(&self, owner: &str) -> StoreResult<Vec<ActivationEntry>> {
        let _ = owner;
        Ok(Vec::new())
    }

    /// Forgets a note without a record, when the activation was never handed over (publishing
    /// failed and the caller was told so).
    async fn remove_pending(&self, namespace: &str, activation_id: &str) -> StoreResult<()> {
        let _ = (namespace, activation_id);
        Ok(())
    }

    /// Every note still open, oldest first: at start, before anything new is accepted, these
    /// are the activations the previous run lost.
    async fn pending(&self) -> StoreResult<Vec<ActivationEntry>> {
        Ok(Vec::new())
    }

    /// How many notes of `namespace` are open, whoever wrote them. Every controller of a
    /// cluster writes its notes to the same store, so this is the namespace's concurrent
    /// activations across all of them (the concurrency throttle's count).
    async fn pending_count(&self, namespace: &str) -> StoreResult<u64> {
        let open = self.pending().await?;
        let count = open
            .iter()
            .filter(|entry| entry.namespace == namespace)
            .count();
        Ok(u64::try_from(count).unwrap_or(u64::MAX))
    }

    /// Adds one to the counter `key` of wall-clock minute `minute` (epoch ms / 60000) and
    /// returns its new value, in one atomic step, so that several controllers sharing the
    /// store share per-minute throttles. Counters of earlier minutes never count again and
    /// may be dropped. Adapters without counters (this default) refuse with
    /// [`StoreError::Unavailable`](crate::StoreError::Unavailable).
    async fn count_in_minute(&self, key: &str, minute: u64) -> StoreResult<u64> {
        let _ = (key, minute);
        Err(crate::StoreError::Unavailable(
            "this activation store keeps no per-minute counters".to_owned(),
        ))
    }
}
