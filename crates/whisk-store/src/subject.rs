//! Subjects, their namespaces and credentials, and per-namespace limit overrides.

use std::fmt;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use whisk_model::{AuthKey, Identity, NamespaceLimits, Subject};

use crate::error::StoreResult;

/// The stored form of a credential's secret.
///
/// Keys are 64 random characters, so a plain SHA-256 is as hard to invert as
/// a slow password hash would be, and checking it costs nothing per request.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// Hashes the secret half of a credential.
    pub fn of(key: &str) -> KeyHash {
        KeyHash(Sha256::digest(key.as_bytes()).into())
    }

    /// Rebuilds a hash read from storage; `None` if it has the wrong length.
    pub fn from_stored(bytes: &[u8]) -> Option<KeyHash> {
        <[u8; 32]>::try_from(bytes).ok().map(KeyHash)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares without an early exit, so response timing does not reveal
    /// how many leading bytes of a guessed key's hash were right.
    pub fn matches(&self, other: &KeyHash) -> bool {
        let difference = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |accumulated, (left, right)| {
                accumulated | (left ^ right)
            });
        std::hint::black_box(difference) == 0
    }
}

/// Hand-written so hashes do not clutter logs.
impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(..)")
    }
}

/// The `wskadmin user` / `wskadmin limits` data, and authentication against it.
#[async_trait]
pub trait SubjectStore: Send + Sync + fmt::Debug {
    /// Creates a subject owning one namespace. `AlreadyExists` if the subject
    /// exists, or the namespace or the credential uuid is already in use.
    async fn create_subject(
        &self,
        subject_name: &str,
        namespace: &str,
        auth_key: &AuthKey,
    ) -> StoreResult<()>;

    /// Gives an existing subject (`NotFound` otherwise) another namespace with
    /// its own credential (`AlreadyExists` if namespace or uuid is in use).
    async fn add_namespace(
        &self,
        subject_name: &str,
        namespace: &str,
        auth_key: &AuthKey,
    ) -> StoreResult<()>;

    async fn get_subject(&self, subject_name: &str) -> StoreResult<Option<Subject>>;

    /// Every subject, ordered by name.
    async fn list_subjects(&self) -> StoreResult<Vec<Subject>>;

    /// Deletes a subject with its namespaces and their limit overrides
    /// (`NotFound` if absent). Entities in those namespaces are not touched.
    async fn delete_subject(&self, subject_name: &str) -> StoreResult<()>;

    /// Blocks or unblocks a subject (`NotFound` if absent). A blocked subject
    /// keeps its data but no longer authenticates.
    async fn set_blocked(&self, subject_name: &str, blocked: bool) -> StoreResult<()>;

    /// The identity a credential grants, with the namespace's limit overrides;
    /// `None` for an unknown uuid, a wrong key or a blocked subject.
    async fn authenticate(&self, auth_key: &AuthKey) -> StoreResult<Option<Identity>>;

    /// The identity that owns a namespace (for web actions and admin tasks);
    /// `None` if no unblocked subject owns it.
    async fn identity_for_namespace(&self, namespace: &str) -> StoreResult<Option<Identity>>;

    /// The namespace's limit overrides; `None` if none were ever set.
    async fn get_limits(&self, namespace: &str) -> StoreResult<Option<NamespaceLimits>>;

    /// Replaces the namespace's overrides (`NotFound` if no subject owns the namespace).
    async fn set_limits(&self, namespace: &str, limits: &NamespaceLimits) -> StoreResult<()>;

    /// Drops the namespace's overrides (`NotFound` if there were none).
    async fn delete_limits(&self, namespace: &str) -> StoreResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hash_matches_only_same_key() {
        let key = "a".repeat(64);
        let hash = KeyHash::of(&key);
        assert!(hash.matches(&KeyHash::of(&key)));
        assert!(!hash.matches(&KeyHash::of(&"b".repeat(64))));
        assert_ne!(hash.as_bytes().as_slice(), key.as_bytes());
    }

    #[test]
    fn key_hash_round_trips_through_storage() {
        let hash = KeyHash::of("secret");
        let restored = KeyHash::from_stored(hash.as_bytes());
        assert_eq!(restored, Some(hash));
        assert_eq!(KeyHash::from_stored(&[0u8; 31]), None);
    }
}
